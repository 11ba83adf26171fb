// The compiled steps' recurrent product, c = d + a · B for the n rows of one slice of the batch:
// a [n, K] (h_{t−1} forward, the gates' gradient backward), B [K, N] the layer's recurrent weight as
// the step reads it (W_hhᵀ forward, W_hh backward), d what the product adds to (c itself, the input
// projection's rows, a bias row, or nothing).
//
// At the size of one slice (n = 16 rows of a batch of 32 on two threads) at::mm reaches about half of
// the core's rate of fused multiply-adds: MKL's small-matrix path, 32.4 µs for [16, 128] · [128, 512]
// on one thread of the AMD EPYC (Zen 4) development machine, where torch's own fused LSTM does its
// whole step, product included, in 27 µs. Here B is laid out once per call in panels of 16 columns
// ([N / 16][K][16], zero past N), and a tile of up to 8 rows × 16 columns stays in registers for the
// whole sum: 18.3 µs for the same product (a standalone C++ comparison in one process).
//
// Each value is d + Σ_k a_k B_k,j summed in k order with fused multiply-adds, from d: the same
// whichever slice (and so whichever thread count) its row falls in, and the same with either kernel.
// Float32 runs the AVX-512F kernel where the CPU has it, else the AVX2 + FMA one (8-wide halves of the
// panel, tiles of 4 rows: 19.4 µs for the product above on the same core, whose AVX-512 units are
// 256 bits wide), both chosen at run time; float64, and CPUs with neither, use at::mm / at::addmm.

#pragma once

#include <ATen/ATen.h>

#include <algorithm>
#include <cstdint>
#include <type_traits>
#include <vector>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define GRADLAB_PACKED_PRODUCT 1
#endif

namespace gradlab_steps {

// Which kernel a Product runs: the best this CPU has, or (for the tests) one chosen.
enum class Kernel : int64_t { best = 0, avx512 = 1, avx2 = 2, mm = 3 };

#ifdef GRADLAB_PACKED_PRODUCT
// R rows (R ≤ 8) of one 16-column panel: c[r, j] = d[r, j] + Σ_k a[r, k] panel[k, j] for its first
// `width` columns. d may be null (then 0); ldd = 0 repeats one row of d for every row.
template <int R>
__attribute__((target("avx512f"))) inline void panel_rows_avx512(const float* a, int64_t lda, const float* panel,
                                                                 int64_t K, const float* d, int64_t ldd, float* c,
                                                                 int64_t ldc, int64_t width) {
  const __mmask16 mask = static_cast<__mmask16>((1u << width) - 1u);
  __m512 acc[R];
  for (int r = 0; r < R; ++r) acc[r] = d ? _mm512_maskz_loadu_ps(mask, d + r * ldd) : _mm512_setzero_ps();
  for (int64_t k = 0; k < K; ++k) {
    const __m512 b = _mm512_loadu_ps(panel + k * 16);
    for (int r = 0; r < R; ++r) acc[r] = _mm512_fmadd_ps(_mm512_set1_ps(a[r * lda + k]), b, acc[r]);
  }
  for (int r = 0; r < R; ++r) _mm512_mask_storeu_ps(c + r * ldc, mask, acc[r]);
}

// Every 16-column panel, in tiles of 8 rows and then the rows left over.
__attribute__((target("avx512f"))) inline void product_avx512(const float* a, int64_t lda, const float* panels,
                                                              int64_t K, int64_t N, const float* d, int64_t ldd,
                                                              float* c, int64_t ldc, int64_t n) {
  for (int64_t j = 0; j < N; j += 16) {
    const float* panel = panels + j * K;  // panel j / 16 starts at (j / 16) · 16 · K
    const int64_t width = N - j < 16 ? N - j : 16;
    int64_t r = 0;
    for (; r + 8 <= n; r += 8) {
      panel_rows_avx512<8>(a + r * lda, lda, panel, K, d ? d + r * ldd + j : nullptr, ldd, c + r * ldc + j, ldc, width);
    }
    const float *ar = a + r * lda, *dr = d ? d + r * ldd + j : nullptr;
    float* cr = c + r * ldc + j;
    switch (n - r) {
      case 7: panel_rows_avx512<7>(ar, lda, panel, K, dr, ldd, cr, ldc, width); break;
      case 6: panel_rows_avx512<6>(ar, lda, panel, K, dr, ldd, cr, ldc, width); break;
      case 5: panel_rows_avx512<5>(ar, lda, panel, K, dr, ldd, cr, ldc, width); break;
      case 4: panel_rows_avx512<4>(ar, lda, panel, K, dr, ldd, cr, ldc, width); break;
      case 3: panel_rows_avx512<3>(ar, lda, panel, K, dr, ldd, cr, ldc, width); break;
      case 2: panel_rows_avx512<2>(ar, lda, panel, K, dr, ldd, cr, ldc, width); break;
      case 1: panel_rows_avx512<1>(ar, lda, panel, K, dr, ldd, cr, ldc, width); break;
      default: break;
    }
  }
}

// The same with 8-wide registers (AVX2 and FMA): a panel's row of 16 as two halves, tiles of 4 rows and
// then single rows, each sum a named variable (kept in an array of 4–6 rows' sums, gcc 12 stored every
// sum to memory after each multiply-add, 2.4× slower than at::mm). A partial panel's row goes through a
// 16-float buffer.
__attribute__((target("avx2,fma"))) inline void start_row(const float* d, int64_t width, __m256& lo, __m256& hi) {
  if (d == nullptr) {
    lo = hi = _mm256_setzero_ps();
  } else if (width == 16) {
    lo = _mm256_loadu_ps(d);
    hi = _mm256_loadu_ps(d + 8);
  } else {
    alignas(32) float edge[16] = {};
    std::copy(d, d + width, edge);
    lo = _mm256_load_ps(edge);
    hi = _mm256_load_ps(edge + 8);
  }
}

__attribute__((target("avx2,fma"))) inline void store_row(float* c, int64_t width, __m256 lo, __m256 hi) {
  if (width == 16) {
    _mm256_storeu_ps(c, lo);
    _mm256_storeu_ps(c + 8, hi);
  } else {
    alignas(32) float edge[16];
    _mm256_store_ps(edge, lo);
    _mm256_store_ps(edge + 8, hi);
    std::copy(edge, edge + width, c);
  }
}

__attribute__((target("avx2,fma"))) inline void four_rows_avx2(const float* a, int64_t lda, const float* panel,
                                                               int64_t K, const float* d, int64_t ldd, float* c,
                                                               int64_t ldc, int64_t width) {
  __m256 c0l, c0h, c1l, c1h, c2l, c2h, c3l, c3h;
  start_row(d, width, c0l, c0h);
  start_row(d ? d + ldd : nullptr, width, c1l, c1h);
  start_row(d ? d + 2 * ldd : nullptr, width, c2l, c2h);
  start_row(d ? d + 3 * ldd : nullptr, width, c3l, c3h);
  for (int64_t k = 0; k < K; ++k) {
    const __m256 bl = _mm256_loadu_ps(panel + k * 16), bh = _mm256_loadu_ps(panel + k * 16 + 8);
    __m256 x = _mm256_broadcast_ss(a + k);
    c0l = _mm256_fmadd_ps(x, bl, c0l);
    c0h = _mm256_fmadd_ps(x, bh, c0h);
    x = _mm256_broadcast_ss(a + lda + k);
    c1l = _mm256_fmadd_ps(x, bl, c1l);
    c1h = _mm256_fmadd_ps(x, bh, c1h);
    x = _mm256_broadcast_ss(a + 2 * lda + k);
    c2l = _mm256_fmadd_ps(x, bl, c2l);
    c2h = _mm256_fmadd_ps(x, bh, c2h);
    x = _mm256_broadcast_ss(a + 3 * lda + k);
    c3l = _mm256_fmadd_ps(x, bl, c3l);
    c3h = _mm256_fmadd_ps(x, bh, c3h);
  }
  store_row(c, width, c0l, c0h);
  store_row(c + ldc, width, c1l, c1h);
  store_row(c + 2 * ldc, width, c2l, c2h);
  store_row(c + 3 * ldc, width, c3l, c3h);
}

__attribute__((target("avx2,fma"))) inline void one_row_avx2(const float* a, const float* panel, int64_t K,
                                                             const float* d, float* c, int64_t width) {
  __m256 lo, hi;
  start_row(d, width, lo, hi);
  for (int64_t k = 0; k < K; ++k) {
    const __m256 x = _mm256_broadcast_ss(a + k);
    lo = _mm256_fmadd_ps(x, _mm256_loadu_ps(panel + k * 16), lo);
    hi = _mm256_fmadd_ps(x, _mm256_loadu_ps(panel + k * 16 + 8), hi);
  }
  store_row(c, width, lo, hi);
}

__attribute__((target("avx2,fma"))) inline void product_avx2(const float* a, int64_t lda, const float* panels,
                                                             int64_t K, int64_t N, const float* d, int64_t ldd,
                                                             float* c, int64_t ldc, int64_t n) {
  for (int64_t j = 0; j < N; j += 16) {
    const float* panel = panels + j * K;
    const int64_t width = N - j < 16 ? N - j : 16;
    int64_t r = 0;
    for (; r + 4 <= n; r += 4) {
      four_rows_avx2(a + r * lda, lda, panel, K, d ? d + r * ldd + j : nullptr, ldd, c + r * ldc + j, ldc, width);
    }
    for (; r < n; ++r) one_row_avx2(a + r * lda, panel, K, d ? d + r * ldd + j : nullptr, c + r * ldc + j, width);
  }
}

// The kernel `wanted` resolves to on this CPU for float32 (Kernel::mm where the CPU lacks it).
inline Kernel available(Kernel wanted) {
  static const bool avx512 = __builtin_cpu_supports("avx512f");
  static const bool avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  if (wanted == Kernel::best) return avx512 ? Kernel::avx512 : avx2 ? Kernel::avx2 : Kernel::mm;
  if ((wanted == Kernel::avx512 && avx512) || (wanted == Kernel::avx2 && avx2)) return wanted;
  return Kernel::mm;
}
#else
inline Kernel available(Kernel) { return Kernel::mm; }
#endif

// The product with one weight B [K, N], for every step and slice of one compiled call (read-only
// once made, so the slices' threads share it).
class Product {
 public:
  explicit Product(const at::Tensor& b, Kernel wanted = Kernel::best)
      : b_(b), K_(b.size(0)), N_(b.size(1)),
        kernel_(b.scalar_type() == at::kFloat ? available(wanted) : Kernel::mm) {
    if (kernel_ == Kernel::mm) return;
    panels_.assign(static_cast<size_t>((N_ + 15) / 16 * 16 * K_), 0.0f);  // [N / 16][K][16], zero past N
    if (b.stride(0) == 1 && b.stride(1) >= K_) {  // a transposed weight (W_hhᵀ): its columns are W_hh's rows
      const float* src = b.data_ptr<float>();
      const int64_t ld = b.stride(1);
      for (int64_t j = 0; j < N_; j += 16) {  // a panel's row k gathers k from 16 of those rows
        const int64_t width = std::min<int64_t>(16, N_ - j);
        float* panel = panels_.data() + j * K_;
        for (int64_t k = 0; k < K_; ++k) {
          for (int64_t jj = 0; jj < width; ++jj) panel[k * 16 + jj] = src[(j + jj) * ld + k];
        }
      }
    } else {  // B's rows in order, 16 values at a time into each panel's row k
      const at::Tensor dense = b.contiguous();
      const float* src = dense.data_ptr<float>();
      for (int64_t k = 0; k < K_; ++k) {
        for (int64_t j = 0; j < N_; j += 16) {
          std::copy(src + k * N_ + j, src + k * N_ + std::min(j + 16, N_), panels_.data() + j * K_ + k * 16);
        }
      }
    }
  }

  // The kernel this product runs.
  Kernel kernel() const { return kernel_; }

  // c [n, N] = d + a [n, K] · B, each matrix's rows ldc, lda, ldd apart (unit stride within a row),
  // raw pointers so that a step makes no tensors. d: null (nothing added), c itself (the product is
  // added to it), n rows of its own, or with ldd = 0 one row (a bias [N]) added to every row.
  template <typename scalar_t>
  void into(scalar_t* c, int64_t ldc, const scalar_t* a, int64_t lda, const scalar_t* d, int64_t ldd,
            int64_t n) const {
#ifdef GRADLAB_PACKED_PRODUCT
    if constexpr (std::is_same_v<scalar_t, float>) {
      if (kernel_ != Kernel::mm) {
        const auto run = kernel_ == Kernel::avx512 ? product_avx512 : product_avx2;
        run(a, lda, panels_.data(), K_, N_, d, ldd, c, ldc, n);
        return;
      }
    }
#endif
    const auto options = b_.options();
    const auto rows = [&](const scalar_t* p, int64_t width, int64_t ld) {
      return at::from_blob(const_cast<scalar_t*>(p), {n, width}, {ld, 1}, options);
    };
    at::Tensor out = rows(c, N_, ldc);
    if (d == nullptr) {
      at::mm_out(out, rows(a, K_, lda), b_);
    } else if (d == c) {
      out.addmm_(rows(a, K_, lda), b_);
    } else {
      const at::Tensor addend = ldd == 0 ? at::from_blob(const_cast<scalar_t*>(d), {N_}, options) : rows(d, N_, ldd);
      at::addmm_out(out, addend, rows(a, K_, lda), b_);
    }
  }

 private:
  at::Tensor b_;
  int64_t K_, N_;
  Kernel kernel_;
  std::vector<float> panels_;
};

}  // namespace gradlab_steps
