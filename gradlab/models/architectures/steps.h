// What the compiled steps share (sweep_steps.cpp: the backward sweeps; forward_steps.cpp: the
// forward sweeps): access to rows of [T, B, ...] tensors, checks, and running a span as slices of the
// batch on torch's intra-op threads (compiled.py says when that is torch's own OpenMP pool).

#pragma once

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#if defined(__SSE__) || defined(__x86_64__)
#include <xmmintrin.h>
#define GRADLAB_MXCSR 1
#endif

#include <cstdint>
#include <initializer_list>

// The rows' elementwise work is compiled for the widest vector units the processor has, chosen when
// the library loads (GCC/Clang function clones on x86-64 Linux): each lane does the same IEEE
// operations in the same order (no contraction), so every width gives the same values.
#if defined(__x86_64__) && defined(__linux__) && defined(__has_attribute)
#if __has_attribute(target_clones)
#define GRADLAB_WIDEST_VECTORS __attribute__((target_clones("avx512f", "avx2", "default")))
#endif
#endif
#ifndef GRADLAB_WIDEST_VECTORS
#define GRADLAB_WIDEST_VECTORS
#endif

namespace gradlab_steps {

// A loop whose iterations are independent, vectorised (-fopenmp-simd); the _Pragma form, since
// #pragma cannot stand inside the AT_DISPATCH macro's argument.
#define GRADLAB_SIMD _Pragma("omp simd")

// Rows of a [T, B, ...] tensor whose last dimension is contiguous: row (t, b) starts at
// data + t * st + b * sb.
template <typename scalar_t>
struct Rows {
  scalar_t* data = nullptr;
  int64_t st = 0, sb = 0;
  Rows() = default;
  explicit Rows(const at::Tensor& x)
      : data(x.data_ptr<scalar_t>()), st(x.stride(0)), sb(x.stride(1)) {
    TORCH_CHECK(x.stride(-1) == 1, "sweep_steps: the last dimension must be contiguous");
  }
  scalar_t* at(int64_t t, int64_t b) const { return data + t * st + b * sb; }
};

// Subnormal floats flushed to zero, as results (FTZ) and as inputs (DAZ), on the calling thread
// while this lives, then the thread's setting as it was (x86; elsewhere nothing changes).
class Flushed {
 public:
  explicit Flushed(bool on) : on_(on) {
#ifdef GRADLAB_MXCSR
    if (on_) {
      saved_ = _mm_getcsr();
      _mm_setcsr(saved_ | 0x8040u);  // FTZ (bit 15) and DAZ (bit 6)
    }
#endif
  }
  ~Flushed() {
#ifdef GRADLAB_MXCSR
    if (on_) _mm_setcsr(saved_);
#endif
  }
  Flushed(const Flushed&) = delete;
  Flushed& operator=(const Flushed&) = delete;

 private:
  bool on_;
  unsigned saved_ = 0;
};

// body(b0, b1) for slices [b0, b1) of the batch's B samples, one slice per thread of torch's
// intra-op pool (one slice, on this thread, where the pool has one thread or OpenMP is not built in).
// Each slice's torch calls go straight to their CPU kernels, below autograd, whose grad mode is a
// setting of each thread (the pool's threads do not share the caller's no_grad).
template <typename F>
void over_batch(int64_t B, bool flush, const F& body) {
  at::parallel_for(0, B, 1, [&](int64_t b0, int64_t b1) {
    at::AutoDispatchBelowADInplaceOrView below_autograd;
    Flushed flushed(flush);
    body(b0, b1);
  });
}

// Ask for `count` values from `p` on into cache (reading, or to be written): a sweep's next step
// reads rows of tapes far larger than the cache, so it asks for them before the step's matrix
// product, which then hides the wait. Measured on the LSTM (B 32, H 128, T 1000, AMD EPYC), where
// one load took 42 % of the elementwise loop's samples: 65.6 against 69.2 µs a step on one thread,
// 39.5 against 40.6 on two.
template <typename scalar_t>
void prefetch(const scalar_t* p, int64_t count, bool write = false) {
  constexpr int64_t LINE = 64 / sizeof(scalar_t);
  for (int64_t j = 0; j < count; j += LINE) {
    if (write) {
      __builtin_prefetch(p + j, 1);
    } else {
      __builtin_prefetch(p + j, 0);
    }
  }
}

inline void check(const at::Tensor& carry, std::initializer_list<at::Tensor> others) {
  TORCH_CHECK(carry.device().is_cpu() && carry.is_contiguous() && carry.dim() == 2,
              "sweep_steps: the carry must be a contiguous [B, H] CPU tensor");
  for (const auto& x : others) {
    TORCH_CHECK(x.device().is_cpu() && x.scalar_type() == carry.scalar_type(),
                "sweep_steps: every tensor must be on the CPU in the carry's dtype");
  }
}

}  // namespace gradlab_steps
