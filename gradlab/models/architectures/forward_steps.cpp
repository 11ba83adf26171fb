// The forward sweeps, compiled: all T steps of one layer and direction in one call, keeping what the
// backward sweep needs (the tape), with the arithmetic of the eager steps in lstm.py, gru.py and srn.py
// (eqs. LSTM-gates, LSTM-cell, LSTM-hidden; GRU-gates, GRU-update; SRN in docs/models.md), in their
// order. Per step and slice of the batch: one recurrent product (product.h) and one vectorised pass
// for the nonlinearities (activations.h) and the state update, instead of a fused forward followed by
// the tape rebuilt from its states (a second recurrent product over all steps). Loaded by compiled.py;
// tests/engine/test_forward_steps.py holds every kernel to its eager twin.

#include <ATen/ATen.h>
#include <torch/library.h>

#include <vector>

#include "activations.h"
#include "product.h"
#include "steps.h"

namespace {

using gradlab_steps::over_batch;
using gradlab_steps::Kernel;
using gradlab_steps::Product;
using gradlab_steps::sigmoid_of;
using gradlab_steps::tanh_of;

// LSTM, n rows: z [n, 4H] the pre-activations, overwritten by i, f, g, o; c_{t−1} [n, H] → c_t, h_t.
template <typename T>
GRADLAB_ALWAYS_INLINE void lstm_rows_of(T* __restrict__ z, const T* __restrict__ before,
                                                        T* __restrict__ cell, T* __restrict__ hidden, int64_t n,
                                                        int64_t H) {
  for (int64_t b = 0; b < n; ++b) {
    T* __restrict__ zi = z + b * 4 * H;  // the four gate blocks of the row, disjoint
    T* __restrict__ zf = zi + H;
    T* __restrict__ zg = zi + 2 * H;
    T* __restrict__ zo = zi + 3 * H;
    const T* __restrict__ c0 = before + b * H;
    T* __restrict__ c1 = cell + b * H;
    T* __restrict__ h1 = hidden + b * H;
    GRADLAB_SIMD
    for (int64_t j = 0; j < H; ++j) {
      const T i = sigmoid_of(zi[j]), f = sigmoid_of(zf[j]), g = tanh_of(zg[j]), o = sigmoid_of(zo[j]);
      zi[j] = i;
      zf[j] = f;
      zg[j] = g;
      zo[j] = o;
      const T cv = f * c0[j] + i * g;
      c1[j] = cv;
      h1[j] = tanh_of(cv) * o;
    }
  }
}
GRADLAB_WIDEST_VECTORS void lstm_rows(float* z, const float* before, float* cell, float* hidden, int64_t n, int64_t H) {
  lstm_rows_of(z, before, cell, hidden, n, H);
}
GRADLAB_WIDEST_VECTORS void lstm_rows(double* z, const double* before, double* cell, double* hidden, int64_t n, int64_t H) {
  lstm_rows_of(z, before, cell, hidden, n, H);
}

// GRU, n rows: y [n, 3H] = h_{t−1} W_hhᵀ + b_hh, x [n, 3H] = x_t W_ihᵀ + b_ih, h_{t−1} [n, H] → gates
// [n, 4H] (r, z, n, m) and h_t [n, H].
template <typename T>
GRADLAB_ALWAYS_INLINE void gru_rows_of(const T* __restrict__ y, const T* __restrict__ x,
                                                       const T* __restrict__ before, T* __restrict__ gates,
                                                       T* __restrict__ after, int64_t n, int64_t H) {
  for (int64_t b = 0; b < n; ++b) {
    const T* __restrict__ yr = y + b * 3 * H;  // y's and x's r, z, n blocks, the gates' r, z, n, m blocks
    const T* __restrict__ yz = yr + H;
    const T* __restrict__ yn = yr + 2 * H;
    const T* __restrict__ xr = x + b * 3 * H;
    const T* __restrict__ xz = xr + H;
    const T* __restrict__ xn = xr + 2 * H;
    T* __restrict__ gr = gates + b * 4 * H;
    T* __restrict__ gz = gr + H;
    T* __restrict__ gn = gr + 2 * H;
    T* __restrict__ gm = gr + 3 * H;
    const T* __restrict__ h0 = before + b * H;
    T* __restrict__ h1 = after + b * H;
    GRADLAB_SIMD
    for (int64_t j = 0; j < H; ++j) {
      const T m = yn[j];
      const T r = sigmoid_of(yr[j] + xr[j]);
      const T z = sigmoid_of(yz[j] + xz[j]);
      const T nv = tanh_of(xn[j] + r * m);
      gr[j] = r;
      gz[j] = z;
      gn[j] = nv;
      gm[j] = m;
      h1[j] = (h0[j] - nv) * z + nv;
    }
  }
}
GRADLAB_WIDEST_VECTORS void gru_rows(const float* y, const float* x, const float* before, float* gates, float* after,
                             int64_t n, int64_t H) {
  gru_rows_of(y, x, before, gates, after, n, H);
}
GRADLAB_WIDEST_VECTORS void gru_rows(const double* y, const double* x, const double* before, double* gates, double* after,
                             int64_t n, int64_t H) {
  gru_rows_of(y, x, before, gates, after, n, H);
}

// tanh of `count` values in place.
template <typename T>
GRADLAB_ALWAYS_INLINE void tanh_rows_of(T* __restrict__ a, int64_t count) {
  GRADLAB_SIMD
  for (int64_t j = 0; j < count; ++j) a[j] = tanh_of(a[j]);
}
GRADLAB_WIDEST_VECTORS void tanh_rows(float* a, int64_t count) { tanh_rows_of(a, count); }
GRADLAB_WIDEST_VECTORS void tanh_rows(double* a, int64_t count) { tanh_rows_of(a, count); }

void check_forward(const at::Tensor& h, std::initializer_list<at::Tensor> others) {
  TORCH_CHECK(h.device().is_cpu() && h.is_contiguous() && h.dim() == 3,
              "forward_steps: h must be a contiguous [T+1, B, H] CPU tensor");
  for (const auto& x : others) {
    TORCH_CHECK(x.device().is_cpu() && x.scalar_type() == h.scalar_type() && x.is_contiguous(),
                "forward_steps: every tensor must be a contiguous CPU tensor in h's dtype");
  }
}

// LSTM: gates [T, B, 4H] holds x_t W_ihᵀ + b_ih + b_hh on entry and the activated gates i, f, g, o on
// exit; h, c [T+1, B, H] with row 0 the initial state, rows 1 … T written:
//   z = gates_t + h_{t−1} W_hhᵀ;  i, f, o = σ(z), g = tanh(z);  c_t = f c_{t−1} + i g;  h_t = o tanh c_t.
void lstm_forward(at::Tensor gates, at::Tensor h, at::Tensor c, at::Tensor weight_hh) {
  check_forward(h, {gates, c, weight_hh});
  const int64_t T = gates.size(0), B = gates.size(1), H = h.size(2);
  const Product w(weight_hh.t());  // [H, 4H]
  AT_DISPATCH_FLOATING_TYPES(h.scalar_type(), "lstm_forward", [&] {
    scalar_t* const gp = gates.data_ptr<scalar_t>();
    scalar_t* const hp = h.data_ptr<scalar_t>();
    scalar_t* const cp = c.data_ptr<scalar_t>();
    over_batch(B, false, [&](int64_t b0, int64_t b1) {
      const int64_t n = b1 - b0;
      for (int64_t t = 0; t < T; ++t) {  // the slice's rows of step t: gp + (t·B + b0)·4H, …
        scalar_t* z = gp + (t * B + b0) * 4 * H;  // [n, 4H]
        w.into<scalar_t>(z, 4 * H, hp + (t * B + b0) * H, H, z, 4 * H, n);
        lstm_rows(z, cp + (t * B + b0) * H, cp + ((t + 1) * B + b0) * H, hp + ((t + 1) * B + b0) * H, n, H);
      }
    });
  });
}

// GRU (torch's form): x_proj [T, B, 3H] = x_t W_ihᵀ + b_ih; gates [T, B, 4H] receives r, z, n and
// m = h_{t−1} W_hnᵀ + b_hn; h [T+1, B, H] with row 0 the initial state:
//   y = h_{t−1} W_hhᵀ + b_hh;  r, z = σ(x_{r,z} + y_{r,z});  n = tanh(x_n + r m);  h_t = (h_{t−1} − n) z + n.
void gru_forward(at::Tensor gates, at::Tensor h, at::Tensor x_proj, at::Tensor weight_hh,
                 const c10::optional<at::Tensor>& bias_hh) {
  check_forward(h, {gates, x_proj, weight_hh});
  const int64_t T = gates.size(0), B = gates.size(1), H = h.size(2);
  const Product w(weight_hh.t());  // [H, 3H]
  const at::Tensor bias = bias_hh.has_value() && bias_hh->defined() ? bias_hh->contiguous() : at::Tensor();
  AT_DISPATCH_FLOATING_TYPES(h.scalar_type(), "gru_forward", [&] {
    const scalar_t* const bp = bias.defined() ? bias.data_ptr<scalar_t>() : nullptr;
    const scalar_t* const xp = x_proj.data_ptr<scalar_t>();
    scalar_t* const gp = gates.data_ptr<scalar_t>();
    scalar_t* const hp = h.data_ptr<scalar_t>();
    over_batch(B, false, [&](int64_t b0, int64_t b1) {
      const int64_t n = b1 - b0;
      std::vector<scalar_t> y(static_cast<size_t>(n * 3 * H));
      for (int64_t t = 0; t < T; ++t) {
        const scalar_t* before = hp + (t * B + b0) * H;
        w.into<scalar_t>(y.data(), 3 * H, before, H, bp, 0, n);
        gru_rows(y.data(), xp + (t * B + b0) * 3 * H, before, gp + (t * B + b0) * 4 * H, hp + ((t + 1) * B + b0) * H,
                 n, H);
      }
    });
  });
}

// SRN: x_proj [T, B, H] = x_t W_ihᵀ + b_ih + b_hh; h [T+1, B, H] with row 0 the initial state:
//   h_t = φ(x_proj_t + h_{t−1} W_hhᵀ),  φ: 0 tanh, 1 relu, 2 the identity.
void srn_forward(at::Tensor h, at::Tensor x_proj, at::Tensor weight_hh, int64_t nonlinearity) {
  check_forward(h, {x_proj, weight_hh});
  TORCH_CHECK(nonlinearity >= 0 && nonlinearity <= 2, "srn_forward: nonlinearity is 0 (tanh), 1 (relu) or 2 (linear)");
  const int64_t T = x_proj.size(0), B = x_proj.size(1), H = h.size(2);
  const Product w(weight_hh.t());  // [H, H]
  AT_DISPATCH_FLOATING_TYPES(h.scalar_type(), "srn_forward", [&] {
    const scalar_t* const xp = x_proj.data_ptr<scalar_t>();
    scalar_t* const hp = h.data_ptr<scalar_t>();
    over_batch(B, false, [&](int64_t b0, int64_t b1) {
      const int64_t n = b1 - b0;
      for (int64_t t = 0; t < T; ++t) {
        scalar_t* __restrict__ a = hp + ((t + 1) * B + b0) * H;
        w.into<scalar_t>(a, H, hp + (t * B + b0) * H, H, xp + (t * B + b0) * H, H, n);
        if (nonlinearity == 0) {
          tanh_rows(a, n * H);
        } else if (nonlinearity == 1) {
          GRADLAB_SIMD
          for (int64_t j = 0; j < n * H; ++j) a[j] = a[j] > 0 ? a[j] : scalar_t(0);
        }
      }
    });
  });
}

// The nonlinearities of activations.h applied to x, for their tests: 0 e^x, 1 e^x − 1, 2 σ, 3 tanh.
at::Tensor activation(const at::Tensor& x, int64_t kind) {
  TORCH_CHECK(x.device().is_cpu() && kind >= 0 && kind <= 3, "activation: a CPU tensor and kind 0 … 3");
  at::Tensor in = x.contiguous(), out = at::empty_like(in);
  AT_DISPATCH_FLOATING_TYPES(in.scalar_type(), "activation", [&] {
    const scalar_t* p = in.data_ptr<scalar_t>();
    scalar_t* q = out.data_ptr<scalar_t>();
    for (int64_t j = 0; j < in.numel(); ++j) {
      q[j] = kind == 0   ? gradlab_steps::exp_of(p[j])
             : kind == 1 ? gradlab_steps::expm1_of(p[j])
             : kind == 2 ? sigmoid_of(p[j])
                         : tanh_of(p[j]);
    }
  });
  return out;
}

// product.h's c = d + a · b, for its tests: d undefined (nothing added), a [N] bias, [n, N], or with
// `in_place` c = d's copy with the product added to it; `kernel` as gradlab_steps::Kernel (0: the best
// this CPU has). product_kernel: the kernel that runs for b when `kernel` is asked for.
at::Tensor product(const at::Tensor& a, const at::Tensor& b, const c10::optional<at::Tensor>& d, bool in_place,
                   int64_t kernel) {
  TORCH_CHECK(a.device().is_cpu() && a.dim() == 2 && b.dim() == 2 && a.size(1) == b.size(0) &&
                  a.scalar_type() == b.scalar_type() && kernel >= 0 && kernel <= 3,
              "product: a [n, K] and b [K, N] on the CPU, in one dtype; kernel 0 … 3");
  const at::Tensor rows = a.contiguous(), addend = d.has_value() && d->defined() ? d->contiguous() : at::Tensor();
  at::AutoDispatchBelowADInplaceOrView below_autograd;
  const Product w(b, static_cast<Kernel>(kernel));
  at::Tensor c = in_place ? addend.clone() : at::empty({a.size(0), b.size(1)}, a.options());
  AT_DISPATCH_FLOATING_TYPES(a.scalar_type(), "product", [&] {
    scalar_t* out = c.data_ptr<scalar_t>();
    const scalar_t* add = in_place ? out : addend.defined() ? addend.data_ptr<scalar_t>() : nullptr;
    const int64_t ldd = addend.defined() && addend.dim() == 2 ? addend.size(1) : 0;  // 0: a bias row
    w.into<scalar_t>(out, c.size(1), rows.data_ptr<scalar_t>(), rows.size(1), add, ldd, a.size(0));
  });
  return c;
}

int64_t product_kernel(const at::Tensor& b, int64_t kernel) {
  return static_cast<int64_t>(Product(b, static_cast<Kernel>(kernel)).kernel());
}

}  // namespace

TORCH_LIBRARY_FRAGMENT(gradlab, m) {
  m.def("lstm_forward(Tensor(a!) gates, Tensor(b!) h, Tensor(c!) c, Tensor weight_hh) -> ()");
  m.def("gru_forward(Tensor(a!) gates, Tensor(b!) h, Tensor x_proj, Tensor weight_hh, Tensor? bias_hh) -> ()");
  m.def("srn_forward(Tensor(a!) h, Tensor x_proj, Tensor weight_hh, int nonlinearity) -> ()");
  m.def("activation(Tensor x, int kind) -> Tensor");
  m.def("product(Tensor a, Tensor b, Tensor? d, bool in_place, int kernel) -> Tensor");
  m.def("product_kernel(Tensor b, int kernel) -> int");
}

TORCH_LIBRARY_IMPL(gradlab, CPU, m) {
  m.impl("lstm_forward", &lstm_forward);
  m.impl("gru_forward", &gru_forward);
  m.impl("srn_forward", &srn_forward);
  m.impl("activation", &activation);
  m.impl("product", &product);
  m.impl("product_kernel", &product_kernel);
}
