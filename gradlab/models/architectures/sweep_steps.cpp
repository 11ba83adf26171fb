// The steps of the backward sweeps, compiled: the same per-step arithmetic as the eager steps of
// lstm.py, gru.py and srn.py (`after_entering`, eqs. LSTM-back-*, GRU-back-*, SRN-back in
// docs/derivations.md) and of the carry scales in gradlab/engine/logscale.py (`enter`,
// `renormalize`, eq. LOG-carry), in one loop per span of steps instead of half a dozen torch
// kernels and their Python dispatch a step. Loaded by compiled.py; tests/engine/test_compiled.py
// holds every kernel to its eager twin.
//
// A span is run one of three ways (CarryScale.spans):
//   quiet   (no `explicit`):            δh_t = carry, nothing rescaled;
//   plain   (`explicit` only):          δh_t = ∂⁺L/∂h_t + carry           (PlainScale.enter);
//   log     (`explicit` and the logs):  δh_t = carry·e^{λ−m} + ê_t·e^{ℓ_t−m}, m = max(λ, ℓ_t),
//           the other carries ·e^{λ−m}, λ ← m (LogScale.enter); after the step the carries are
//           rescaled by 2^{−e}, e the exponent of their joint largest magnitude, and λ += e ln 2
//           (LogScale.renormalize).
// Elementwise operations are written in the eager code's order and without fused multiply-adds
// (-ffp-contract=off), the LSTM's compiled for the widest vector units (GRADLAB_WIDEST_VECTORS) with
// tanh c_t from activations.h, the compiled forward's own (the eager step reads torch.tanh); the
// recurrent product is product.h's (in float32 with AVX-512 or AVX2 summed in
// its own order; in double, and on CPUs with neither, at::mm as in the eager steps); torch's own vectorised
// kernels may still round differently, so the two paths agree to rounding (float64 to 1e-12 of
// each step's largest entry in the tests), not always to the last bit.
//
// Every sample's carry depends on that sample alone, so a span runs as slices of the batch, one per
// thread of torch's intra-op pool (at::parallel_for; compiled.py builds with OpenMP only where that
// is the libgomp torch itself runs on), each slice through all of the span's steps with its own
// single-threaded product: no thread waits for another within a span. A log-domain span flushes
// subnormal floats on every thread of the pool while it runs (the carries are at unit size, so
// only entries below 1e-38 of their row's largest are touched); a plain one keeps them, as
// autograd does.

#include <ATen/ATen.h>
#include <torch/library.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <optional>
#include <type_traits>
#include <vector>

#include "activations.h"
#include "product.h"
#include "steps.h"

namespace {

using gradlab_steps::check;
using gradlab_steps::over_batch;
using gradlab_steps::prefetch;
using gradlab_steps::Product;
using gradlab_steps::Rows;
using gradlab_steps::tanh_of;

constexpr double LOG_ZERO = -1e300;          // logscale.LOG_ZERO
constexpr double LN2 = 0.6931471805599453;  // logscale.LN2 = math.log(2.0)


// What a span measures of each row it stores (RowNorms in base.py), while the row is in cache:
// norms [S, 2, T, B] float64, per state s the L2 norm of the stored row ([s, 0]) and of its plain
// value as the dtype holds it ([s, 1]); values [S, T, B, H], or none, those plain values. A plain row
// is its own plain value; a log-domain row x̂ at scale λ has the plain value x̂·e^λ as
// gradlab/engine/logscale.py's to_plain forms it (e^λ rounded to the dtype, 0 where the product
// falls below the dtype's normal range, inf past it, an exact 0 kept 0), and its norm is that of
// stable_norm (gradlab/engine/numerics.py): float32 squared in float64, float64 scaled by its largest
// magnitude, NaN read as inf.
template <typename scalar_t>
struct Measure {
  double* norms = nullptr;
  scalar_t* values = nullptr;
  int64_t T = 0, B = 0, H = 0;

  Measure(const c10::optional<at::Tensor>& norms_, const c10::optional<at::Tensor>& values_, int64_t H_) : H(H_) {
    if (!(norms_.has_value() && norms_->defined())) return;
    TORCH_CHECK(norms_->scalar_type() == at::kDouble && norms_->is_contiguous() && norms_->dim() == 4 &&
                    norms_->size(1) == 2,
                "sweep_steps: norms must be a contiguous float64 [S, 2, T, B] tensor");
    norms = norms_->data_ptr<double>();
    T = norms_->size(2);
    B = norms_->size(3);
    if (values_.has_value() && values_->defined()) {
      TORCH_CHECK(values_->is_contiguous() && values_->dim() == 4 && values_->size(1) == T &&
                      values_->size(2) == B && values_->size(3) == H,
                  "sweep_steps: values must be a contiguous [S, T, B, H] tensor");
      values = values_->data_ptr<scalar_t>();
    }
  }

  // The L2 norm of H values, as stable_norm takes it.
  static double l2(const scalar_t* __restrict__ x, int64_t H) {
    double norm = 0;
    if constexpr (std::is_same_v<scalar_t, float>) {
      double sum = 0;
#pragma omp simd reduction(+ : sum)
      for (int64_t j = 0; j < H; ++j) sum += static_cast<double>(x[j]) * static_cast<double>(x[j]);
      norm = std::sqrt(sum);
    } else {
      double largest = 0;
      bool nan = false;
      for (int64_t j = 0; j < H; ++j) {
        const double a = std::abs(static_cast<double>(x[j]));
        nan = nan || std::isnan(a);
        largest = std::max(largest, a);
      }
      if (nan) return std::numeric_limits<double>::infinity();
      if (largest == 0 || std::isinf(largest)) return largest;
      const double scale = std::max(largest, std::numeric_limits<double>::min());
      double sum = 0;
#pragma omp simd reduction(+ : sum)
      for (int64_t j = 0; j < H; ++j) {
        const double y = static_cast<double>(x[j]) / scale;
        sum += y * y;
      }
      norm = scale * std::sqrt(sum);
    }
    return std::isnan(norm) ? std::numeric_limits<double>::infinity() : norm;
  }

  // Row x [H] of state s, stored at step t for sample b; lam: its log scale λ, or null for a plain row.
  void row(int64_t s, int64_t t, int64_t b, const scalar_t* __restrict__ x, const double* lam) const {
    if (norms == nullptr) return;
    double* out = norms + (s * 2 * T + t) * B + b;  // [s, 0, t, b]; [s, 1, t, b] lies T·B further
    const double own = l2(x, H);
    out[0] = own;
    if (lam == nullptr) {
      out[T * B] = own;
      return;
    }
    static thread_local std::vector<scalar_t> scratch;
    scalar_t* __restrict__ v = values;
    if (v != nullptr) {
      v += ((s * T + t) * B + b) * H;
    } else {
      scratch.resize(H);
      v = scratch.data();
    }
    const scalar_t scale = static_cast<scalar_t>(std::exp(*lam));  // exp(LOG_ZERO) is exactly 0
    const scalar_t tiny = std::numeric_limits<scalar_t>::min();
    for (int64_t j = 0; j < H; ++j) {
      const scalar_t p = x[j] * scale;
      v[j] = (x[j] == 0 || std::abs(p) < tiny) ? scalar_t(0) : p;  // never 0·inf = NaN
    }
    out[T * B] = l2(v, H);
  }
};

// How each step of a span begins and ends: the carry scale's `enter` and `renormalize`.
// explicit: ∂⁺L/∂h_t (plain) or its unit-size rows ê_t (log), [T, B, H]; explicit_log: ℓ_t [T, B];
// log: λ [B], updated in place; steps: [T, B], the λ of each stored step (LogScale.steps).
template <typename scalar_t>
struct Entry {
  bool merges = false, logs = false;
  Rows<scalar_t> E;
  const double* ell = nullptr;
  int64_t ell_st = 0, steps_st = 0;
  double* lam = nullptr;
  double* steps = nullptr;

  Entry(const c10::optional<at::Tensor>& explicit_, const c10::optional<at::Tensor>& explicit_log,
        const c10::optional<at::Tensor>& log, const c10::optional<at::Tensor>& steps_) {
    merges = explicit_.has_value() && explicit_->defined();
    logs = merges && log.has_value() && log->defined();
    if (merges) E = Rows<scalar_t>(*explicit_);
    if (logs) {
      TORCH_CHECK(explicit_log.has_value() && steps_.has_value() && log->is_contiguous() &&
                      log->scalar_type() == at::kDouble && explicit_log->scalar_type() == at::kDouble &&
                      steps_->scalar_type() == at::kDouble && explicit_log->stride(1) == 1 &&
                      steps_->stride(1) == 1,
                  "sweep_steps: the log scale's tensors must be float64 with contiguous rows");
      ell = explicit_log->data_ptr<double>();
      ell_st = explicit_log->stride(0);
      lam = log->data_ptr<double>();
      steps = steps_->data_ptr<double>();
      steps_st = steps_->stride(0);
    }
  }

  // δh_t into dh's rows b0 … b1−1 from the carry [B, H]; the log scale also rescales `other`
  // ([B, H] or null).
  void enter(int64_t t, const scalar_t* carry, const Rows<scalar_t>& dh, scalar_t* other, int64_t b0, int64_t b1,
             int64_t H) const {
    for (int64_t b = b0; b < b1; ++b) {
      const scalar_t* __restrict__ cb = carry + b * H;
      scalar_t* __restrict__ out = dh.at(t, b);
      if (!merges) {
        std::copy(cb, cb + H, out);
      } else if (!logs) {
        const scalar_t* __restrict__ eb = E.at(t, b);
#pragma omp simd
        for (int64_t j = 0; j < H; ++j) out[j] = eb[j] + cb[j];
      } else {
        const double l = lam[b], e = ell[t * ell_st + b];
        const double m = std::max(l, e);
        const scalar_t a = static_cast<scalar_t>(std::exp(l - m));
        const scalar_t w = static_cast<scalar_t>(std::exp(e - m));
        const scalar_t* __restrict__ eb = E.at(t, b);
#pragma omp simd
        for (int64_t j = 0; j < H; ++j) out[j] = cb[j] * a + eb[j] * w;
        if (other != nullptr) {
          scalar_t* __restrict__ ob = other + b * H;
#pragma omp simd
          for (int64_t j = 0; j < H; ++j) ob[j] = ob[j] * a;
        }
        lam[b] = m;
        steps[t * steps_st + b] = m;
      }
    }
  }

  // The log scale of the row stored at step t for sample b (set by enter), or null for plain rows.
  const double* scale_of(int64_t t, int64_t b) const { return logs ? steps + t * steps_st + b : nullptr; }

  // The explicit gradient's rows of step t for samples b0 … b1−1 into cache (see prefetch).
  void prefetch_step(int64_t t, int64_t b0, int64_t b1, int64_t H) const {
    if (!merges) return;
    for (int64_t b = b0; b < b1; ++b) prefetch(E.at(t, b), H);
  }

  // LogScale.renormalize of the carries' rows b0 … b1−1 (each carry [B, H]): nothing for the quiet
  // and plain spans.
  void renormalize(std::initializer_list<scalar_t*> carries, int64_t b0, int64_t b1, int64_t H) const {
    if (!logs) return;
    const scalar_t tiny = std::numeric_limits<scalar_t>::min();
    for (int64_t b = b0; b < b1; ++b) {
      scalar_t m = 0;
      for (scalar_t* c : carries) {
        const scalar_t* __restrict__ row = c + b * H;
#pragma omp simd reduction(max : m)
        for (int64_t j = 0; j < H; ++j) m = std::max(m, std::abs(row[j]));
      }
      const bool zero = m == 0;
      const scalar_t clamped = std::max(m, tiny);
      int exponent = 0;
      const scalar_t mantissa = std::frexp(clamped, &exponent);
      const scalar_t power = mantissa / clamped;  // exactly 2^−exponent
      for (scalar_t* c : carries) {
        scalar_t* __restrict__ row = c + b * H;
#pragma omp simd
        for (int64_t j = 0; j < H; ++j) row[j] = row[j] * power;
      }
      lam[b] = zero ? LOG_ZERO : lam[b] + static_cast<double>(exponent) * LN2;
    }
  }
};

// ∂L/∂x_t = δx_t W_ih through this direction (eq. PARAM-grads), formed while the step's δx rows (the
// gradient on the input projection) are in cache, instead of one [T·B, G·H] · [G·H, I] product after
// the sweep, which reads them all back (MKL ran that product, narrow as it is, at about a quarter of
// the rate of the recurrent one). weight_ih [G·H, I] and dx [T, B, I] (contiguous, written), or
// neither: then nothing is formed.
template <typename scalar_t>
class InputGrad {
 public:
  InputGrad(const c10::optional<at::Tensor>& weight_ih, const c10::optional<at::Tensor>& dx, int64_t B) : B_(B) {
    if (!(dx.has_value() && dx->defined())) return;
    TORCH_CHECK(weight_ih.has_value() && weight_ih->defined() && dx->is_contiguous() && dx->dim() == 3 &&
                    dx->size(1) == B && dx->size(2) == weight_ih->size(1),
                "sweep_steps: dx must be a contiguous [T, B, I] tensor, with weight_ih [G·H, I]");
    product_.emplace(*weight_ih);
    dx_ = dx->data_ptr<scalar_t>();
    I_ = dx->size(2);
  }
  // Rows b0 … b0 + n − 1 of step t from their δx rows (ld apart).
  void rows(int64_t t, int64_t b0, int64_t n, const scalar_t* proj, int64_t ld) const {
    if (dx_ != nullptr) product_->template into<scalar_t>(dx_ + (t * B_ + b0) * I_, I_, proj, ld, nullptr, 0, n);
  }

 private:
  std::optional<Product> product_;
  scalar_t* dx_ = nullptr;
  int64_t B_, I_ = 0;
};

// LSTM, the n rows of one step from δh_t (eqs. LSTM-back-c, LSTM-back-z), with the local derivatives
// of LSTMArchitecture.local_derivatives formed in the same loop, in the same order, and tanh c_t as
// the compiled forward step formed it (activations.h):
//   ∂h/∂c = o (1 − tanh² c_t),  ∂h/∂z^o = tanh c_t · o (1 − o),
//   ∂c/∂z^{i,f,g} = (g · i (1 − i), c_{t−1} · f (1 − f), i (1 − g²));
//   δc_t = carry_c + δh_t ⊙ ∂h/∂c;  δz_t = [δc_t ⊙ ∂c/∂z^{i,f,g}, δh_t ⊙ ∂h/∂z^o];  carry_c = δc_t ⊙ f_t.
// Row r of gates (i, f, g, o blocks of H), c_{t−1} (before), c_t (after), δh and δc starts r·(its
// stride) past the pointer given; carry_c's rows are H apart, z's 4H.
template <typename T>
GRADLAB_ALWAYS_INLINE void lstm_back_rows_of(const T* gates, int64_t sg, const T* before, const T* after, int64_t sc,
                                             const T* dh, int64_t sdh, T* dc, int64_t sdc, T* carry_c, T* z,
                                             int64_t n, int64_t H) {
  const T one = 1;
  for (int64_t r = 0; r < n; ++r) {
    const T* __restrict__ gb = gates + r * sg;
    const T* __restrict__ pb = before + r * sc;
    const T* __restrict__ ab = after + r * sc;
    const T* __restrict__ dhb = dh + r * sdh;
    T* __restrict__ dcb = dc + r * sdc;
    T* __restrict__ cb = carry_c + r * H;
    T* __restrict__ zb = z + r * 4 * H;
    GRADLAB_SIMD
    for (int64_t j = 0; j < H; ++j) {
      const T i = gb[j], f = gb[H + j], g = gb[2 * H + j], o = gb[3 * H + j], tc = tanh_of(ab[j]);
      const T dhdc = o * (one - tc * tc);
      const T dhdo = tc * o * (one - o);
      const T d = dhb[j];
      const T cv = cb[j] + d * dhdc;
      dcb[j] = cv;
      zb[j] = cv * (g * i * (one - i));
      zb[H + j] = cv * (pb[j] * f * (one - f));
      zb[2 * H + j] = cv * (i * (one - g * g));
      zb[3 * H + j] = d * dhdo;
      cb[j] = cv * f;
    }
  }
}
GRADLAB_WIDEST_VECTORS void lstm_back_rows(const float* gates, int64_t sg, const float* before, const float* after,
                                           int64_t sc, const float* dh, int64_t sdh, float* dc, int64_t sdc,
                                           float* carry_c, float* z, int64_t n, int64_t H) {
  lstm_back_rows_of(gates, sg, before, after, sc, dh, sdh, dc, sdc, carry_c, z, n, H);
}
GRADLAB_WIDEST_VECTORS void lstm_back_rows(const double* gates, int64_t sg, const double* before,
                                           const double* after, int64_t sc, const double* dh, int64_t sdh,
                                           double* dc, int64_t sdc, double* carry_c, double* z, int64_t n,
                                           int64_t H) {
  lstm_back_rows_of(gates, sg, before, after, sc, dh, sdh, dc, sdc, carry_c, z, n, H);
}

// LSTM, steps hi down to lo: δh_t entered; lstm_back_rows; carry_h = δz_t W_hh (eq. LSTM-back-h); the
// rows of ∂L/∂x_t (InputGrad). gates: [T, B, 4H] (activated i, f, g, o); c: [T+1, B, H] (c[0] = c_0);
// dz: [R, B, 4, H], contiguous, step t's rows in row t mod R (Projections in base.py: R = T, a chunk, or 1).
void lstm_steps(at::Tensor carry_h, at::Tensor carry_c, at::Tensor dh, at::Tensor dc, at::Tensor dz,
                at::Tensor gates, at::Tensor c, at::Tensor weight_hh, const c10::optional<at::Tensor>& weight_ih,
                const c10::optional<at::Tensor>& dx, int64_t hi, int64_t lo,
                const c10::optional<at::Tensor>& norms, const c10::optional<at::Tensor>& values,
                const c10::optional<at::Tensor>& explicit_, const c10::optional<at::Tensor>& explicit_log,
                const c10::optional<at::Tensor>& log, const c10::optional<at::Tensor>& steps) {
  check(carry_h, {carry_c, dh, dc, dz, gates, c, weight_hh});
  TORCH_CHECK(carry_c.is_contiguous() && dz.is_contiguous(), "lstm_steps: carry_c and dz must be contiguous");
  const int64_t B = carry_h.size(0), H = carry_h.size(1);
  AT_DISPATCH_FLOATING_TYPES(dh.scalar_type(), "lstm_steps", [&] {
    const Entry<scalar_t> entry(explicit_, explicit_log, log, steps);
    const Measure<scalar_t> measure(norms, values, H);
    const Rows<scalar_t> DH(dh), DC(dc), G(gates), C(c);
    const Product w(weight_hh);  // [4H, H]
    const InputGrad<scalar_t> input(weight_ih, dx, B);
    scalar_t* ch = carry_h.data_ptr<scalar_t>();
    scalar_t* cc = carry_c.data_ptr<scalar_t>();
    scalar_t* dz_p = dz.data_ptr<scalar_t>();
    const int64_t dz_rows = dz.size(0);
    over_batch(B, entry.logs, [&](int64_t b0, int64_t b1) {
      const int64_t n = b1 - b0;
      for (int64_t t = hi; t >= lo; --t) {
        entry.enter(t, ch, DH, cc, b0, b1, H);
        scalar_t* z = dz_p + ((t % dz_rows) * B + b0) * 4 * H;  // [n, 4, H], contiguous
        lstm_back_rows(G.at(t, b0), G.sb, C.at(t, b0), C.at(t + 1, b0), C.sb, DH.at(t, b0), DH.sb, DC.at(t, b0),
                       DC.sb, cc + b0 * H, z, n, H);
        for (int64_t b = b0; b < b1; ++b) {
          measure.row(0, t, b, DH.at(t, b), entry.scale_of(t, b));
          measure.row(1, t, b, DC.at(t, b), entry.scale_of(t, b));
        }
        if (t > lo) {  // the next step's rows, fetched while the product runs
          for (int64_t b = b0; b < b1; ++b) {
            prefetch(G.at(t - 1, b), 4 * H);
            prefetch(C.at(t - 1, b), H);  // (its c_t is this step's c_{t−1}, in cache)
            prefetch(DH.at(t - 1, b), H, true);
            prefetch(DC.at(t - 1, b), H, true);
          }
          entry.prefetch_step(t - 1, b0, b1, H);
        }
        w.into<scalar_t>(ch + b0 * H, H, z, 4 * H, nullptr, 0, n);
        input.rows(t, b0, n, z, 4 * H);
        entry.renormalize({ch, cc}, b0, b1, H);
      }
    });
  });
}

// GRU, steps hi down to lo (eqs. GRU-back-a, GRU-back-h):
//   δh_t entered;  δa_n = δh_t ⊙ ∂h/∂a^n;  δa_z = δh_t ⊙ ∂h/∂a^z;  δa_r = δa_n ⊙ ∂a^n/∂a^r;
//   δx_t = [δa_r, δa_z, δa_n];  δy_t = [δa_r, δa_z, δa_n ⊙ r];  carry = δy_t W_hh + δh_t ⊙ z.
// dx, dy: [R, B, 3, H], contiguous, step t's rows in row t mod R (as the LSTM's dz).
void gru_steps(at::Tensor carry, at::Tensor dh, at::Tensor dx, at::Tensor dy, at::Tensor d_n, at::Tensor d_z,
               at::Tensor d_r, at::Tensor reset, at::Tensor keep_gate, at::Tensor weight_hh,
               const c10::optional<at::Tensor>& weight_ih, const c10::optional<at::Tensor>& input_grad, int64_t hi,
               int64_t lo, const c10::optional<at::Tensor>& norms, const c10::optional<at::Tensor>& values,
               const c10::optional<at::Tensor>& explicit_, const c10::optional<at::Tensor>& explicit_log,
               const c10::optional<at::Tensor>& log, const c10::optional<at::Tensor>& steps) {
  check(carry, {dh, dx, dy, d_n, d_z, d_r, reset, keep_gate, weight_hh});
  TORCH_CHECK(dx.is_contiguous() && dy.is_contiguous(), "gru_steps: dx and dy must be contiguous");
  const int64_t B = carry.size(0), H = carry.size(1);
  AT_DISPATCH_FLOATING_TYPES(dh.scalar_type(), "gru_steps", [&] {
    const Entry<scalar_t> entry(explicit_, explicit_log, log, steps);
    const Measure<scalar_t> measure(norms, values, H);
    const Rows<scalar_t> DH(dh), N(d_n), Z(d_z), R(d_r), RESET(reset), KEEP(keep_gate);
    const Product w(weight_hh);  // [3H, H]
    const InputGrad<scalar_t> input(weight_ih, input_grad, B);
    scalar_t* cp = carry.data_ptr<scalar_t>();
    scalar_t* dx_p = dx.data_ptr<scalar_t>();
    scalar_t* dy_p = dy.data_ptr<scalar_t>();
    const int64_t rows = dx.size(0);
    over_batch(B, entry.logs, [&](int64_t b0, int64_t b1) {
      const int64_t n = b1 - b0;
      for (int64_t t = hi; t >= lo; --t) {
        entry.enter(t, cp, DH, nullptr, b0, b1, H);
        scalar_t* xp = dx_p + ((t % rows) * B + b0) * 3 * H;  // [n, 3, H], contiguous
        scalar_t* yp = dy_p + ((t % rows) * B + b0) * 3 * H;
        for (int64_t b = b0; b < b1; ++b) {
          const scalar_t* __restrict__ hb = DH.at(t, b);
          const scalar_t *__restrict__ nb = N.at(t, b), *__restrict__ zb = Z.at(t, b), *__restrict__ rb = R.at(t, b),
                         *__restrict__ eb = RESET.at(t, b);
          scalar_t* __restrict__ xb = xp + (b - b0) * 3 * H;
          scalar_t* __restrict__ yb = yp + (b - b0) * 3 * H;
          GRADLAB_SIMD
          for (int64_t j = 0; j < H; ++j) {
            const scalar_t d = hb[j];
            const scalar_t an = d * nb[j];
            const scalar_t az = d * zb[j];
            const scalar_t ar = an * rb[j];
            xb[j] = ar;
            xb[H + j] = az;
            xb[2 * H + j] = an;
            yb[j] = ar;
            yb[H + j] = az;
            yb[2 * H + j] = an * eb[j];
          }
          measure.row(0, t, b, hb, entry.scale_of(t, b));
        }
        w.into<scalar_t>(cp + b0 * H, H, yp, 3 * H, nullptr, 0, n);
        input.rows(t, b0, n, xp, 3 * H);
        for (int64_t b = b0; b < b1; ++b) {
          scalar_t* __restrict__ cb = cp + b * H;
          const scalar_t* __restrict__ hb = DH.at(t, b);
          const scalar_t* __restrict__ kb = KEEP.at(t, b);
          GRADLAB_SIMD
          for (int64_t j = 0; j < H; ++j) cb[j] = cb[j] + hb[j] * kb[j];
        }
        entry.renormalize({cp}, b0, b1, H);
      }
    });
  });
}

// SRN, steps hi down to lo (eq. SRN-back):
//   δh_t entered;  δa_t = δh_t ⊙ φ′(a_t);  carry = δa_t W_hh.   da: [R, B, H], step t's rows in row t mod R.
void srn_steps(at::Tensor carry, at::Tensor dh, at::Tensor da, at::Tensor dphi, at::Tensor weight_hh,
               const c10::optional<at::Tensor>& weight_ih, const c10::optional<at::Tensor>& dx, int64_t hi, int64_t lo, const c10::optional<at::Tensor>& norms,
               const c10::optional<at::Tensor>& values, const c10::optional<at::Tensor>& explicit_,
               const c10::optional<at::Tensor>& explicit_log, const c10::optional<at::Tensor>& log,
               const c10::optional<at::Tensor>& steps) {
  check(carry, {dh, da, dphi, weight_hh});
  TORCH_CHECK(da.is_contiguous(), "srn_steps: da must be contiguous");
  const int64_t B = carry.size(0), H = carry.size(1);
  AT_DISPATCH_FLOATING_TYPES(dh.scalar_type(), "srn_steps", [&] {
    const Entry<scalar_t> entry(explicit_, explicit_log, log, steps);
    const Measure<scalar_t> measure(norms, values, H);
    const Rows<scalar_t> DH(dh), P(dphi);
    const Product w(weight_hh);  // [H, H]
    const InputGrad<scalar_t> input(weight_ih, dx, B);
    scalar_t* cp = carry.data_ptr<scalar_t>();
    scalar_t* da_p = da.data_ptr<scalar_t>();
    const int64_t rows = da.size(0);
    over_batch(B, entry.logs, [&](int64_t b0, int64_t b1) {
      const int64_t n = b1 - b0;
      for (int64_t t = hi; t >= lo; --t) {
        entry.enter(t, cp, DH, nullptr, b0, b1, H);
        scalar_t* ap = da_p + ((t % rows) * B + b0) * H;  // [n, H], contiguous
        for (int64_t b = b0; b < b1; ++b) {
          const scalar_t* __restrict__ hb = DH.at(t, b);
          const scalar_t* __restrict__ pb = P.at(t, b);
          scalar_t* __restrict__ ab = ap + (b - b0) * H;
          GRADLAB_SIMD
          for (int64_t j = 0; j < H; ++j) ab[j] = hb[j] * pb[j];
          measure.row(0, t, b, hb, entry.scale_of(t, b));
        }
        w.into<scalar_t>(cp + b0 * H, H, ap, H, nullptr, 0, n);
        input.rows(t, b0, n, ap, H);
        entry.renormalize({cp}, b0, b1, H);
      }
    });
  });
}

}  // namespace

// The entry arguments, last in every op: none for a quiet span; `explicit` for the plain scale;
// all four for the log scale (log and steps are written).
#define ENTRY "Tensor? explicit, Tensor? explicit_log, Tensor(f!)? log, Tensor(g!)? steps"
// What the span measures of the rows it stores, before them (see Measure): none, or norms and values.
#define MEASURE "Tensor(h!)? norms, Tensor(i!)? values"
// The input's gradient through the direction (see InputGrad), after the recurrent weight: none, or both.
#define INPUT "Tensor? weight_ih, Tensor(j!)? input_grad"

TORCH_LIBRARY(gradlab, m) {
  m.def("lstm_steps(Tensor(a!) carry_h, Tensor(b!) carry_c, Tensor(c!) dh, Tensor(d!) dc, Tensor(e!) dz, "
        "Tensor gates, Tensor c, Tensor weight_hh, " INPUT ", int hi, int lo, " MEASURE ", " ENTRY
        ") -> ()");
  m.def("gru_steps(Tensor(a!) carry, Tensor(b!) dh, Tensor(c!) dx, Tensor(d!) dy, Tensor d_n, Tensor d_z, "
        "Tensor d_r, Tensor reset, Tensor keep_gate, Tensor weight_hh, " INPUT ", int hi, int lo, " MEASURE ", " ENTRY
        ") -> ()");
  m.def("srn_steps(Tensor(a!) carry, Tensor(b!) dh, Tensor(c!) da, Tensor dphi, Tensor weight_hh, " INPUT ", "
        "int hi, int lo, " MEASURE ", " ENTRY ") -> ()");
}

TORCH_LIBRARY_IMPL(gradlab, CPU, m) {
  m.impl("lstm_steps", &lstm_steps);
  m.impl("gru_steps", &gru_steps);
  m.impl("srn_steps", &srn_steps);
}
