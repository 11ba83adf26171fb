// The forward steps' nonlinearities, σ and tanh, for float and double, written so that a loop over
// them vectorises (no calls, no branches): torch's own vectorised kernels cost too much per call at
// the size of one step's slice (measured: 21 µs for σ and tanh of 16 × 512 floats through at::
// calls, against a 30 µs recurrent product). Accurate to a few units in the last place (held to
// 40-digit references by tests/models/test_activations.py); σ keeps its full relative precision for
// saturated gates (σ(−20) ≈ 2e−9 is not rounded to 0) and, like torch's own, is 0 where e^{−x}
// overflows (its exact value is then subnormal); tanh keeps it for small arguments.

#pragma once

#include <cstdint>
#include <cstring>

// Inlined wherever called, also into the function clones for wider vector units (forward_steps.cpp),
// which the compiler would otherwise call out of line, element by element.
#define GRADLAB_ALWAYS_INLINE __attribute__((always_inline)) inline

namespace gradlab_steps {

// e^x = 2^n · e^r with n = round(x / ln 2) and r = x − n ln 2 (Cody–Waite: ln 2 in a high part exact
// in few bits and a low part), |r| ≤ ln 2 / 2; e^r by its Taylor series Σ r^k / k! to the dtype's
// precision (the first term left out is below half an ulp: r^8/8! < 5.2e−9 in float, r^14/14! <
// 4.1e−18 in double); 2^n applied as two exact powers of two, so that results below the normal range
// round once into the subnormals and results past the largest float are inf.
template <typename T>
struct ExpConstants;

template <>
struct ExpConstants<float> {
  using Bits = std::uint32_t;
  static constexpr float LOG2E = 1.44269504088896341f;
  static constexpr float LN2_HI = 0.693359375f, LN2_LO = -2.12194440e-4f;  // Cephes
  static constexpr float ROUND = 12582912.0f;                               // 1.5 · 2^23: x + ROUND − ROUND rounds x
  static constexpr float LOWEST = -104.0f, HIGHEST = 89.0f;                // e^x is 0 below, inf above
  static constexpr int BITS = 23, BIAS = 127, DEGREE = 7;
};

template <>
struct ExpConstants<double> {
  using Bits = std::uint64_t;
  static constexpr double LOG2E = 1.4426950408889634;
  static constexpr double LN2_HI = 6.93147180369123816490e-01, LN2_LO = 1.90821492927058770002e-10;  // fdlibm
  static constexpr double ROUND = 6755399441055744.0;  // 1.5 · 2^52
  static constexpr double LOWEST = -746.0, HIGHEST = 710.0;
  static constexpr int BITS = 52, BIAS = 1023, DEGREE = 13;
};

// 2^m for an integer-valued m in the dtype's normal exponent range, without converting m to an
// integer (no vector instruction does that for double below AVX-512): m + 1.5·2^BITS + BIAS holds
// m + BIAS in its lowest mantissa bits, and shifted up by BITS those bits are 2^m's (the rest of the
// word shifts out).
template <typename T>
GRADLAB_ALWAYS_INLINE T power_of_two(T m) {
  using C = ExpConstants<T>;
  const T shifted = m + (C::ROUND + C::BIAS);
  typename C::Bits bits;
  std::memcpy(&bits, &shifted, sizeof(T));
  bits <<= C::BITS;
  T out;
  std::memcpy(&out, &bits, sizeof(T));
  return out;
}

// The coefficients 1/k! of e^r's Taylor series, k = 0 … DEGREE, rounded to T once, at compile time.
template <typename T>
struct InverseFactorials {
  T c[ExpConstants<T>::DEGREE + 1];
  constexpr InverseFactorials() : c() {
    T factorial = 1;
    c[0] = 1;
    for (int k = 1; k <= ExpConstants<T>::DEGREE; ++k) {
      factorial *= static_cast<T>(k);
      c[k] = static_cast<T>(1) / factorial;
    }
  }
};

template <typename T>
inline constexpr InverseFactorials<T> INVERSE_FACTORIALS{};

// Σ_{k=K}^{DEGREE} r^(k−K) / k!, in Horner's form, unrolled at compile time (a loop inside the
// vectorised loop would keep it from vectorising).
template <typename T, int K>
struct Horner {
  GRADLAB_ALWAYS_INLINE static T of(T r) {
    if constexpr (K == ExpConstants<T>::DEGREE) {
      return INVERSE_FACTORIALS<T>.c[K];
    } else {
      return Horner<T, K + 1>::of(r) * r + INVERSE_FACTORIALS<T>.c[K];
    }
  }
};

// Σ_{k=FIRST}^{DEGREE} r^k / k! (FIRST: 0 for e^r, 1 for e^r − 1).
template <typename T, int FIRST>
GRADLAB_ALWAYS_INLINE T taylor_exp(T r) {
  const T tail = Horner<T, 1>::of(r) * r;  // Σ_{k≥1} r^k / k!
  if constexpr (FIRST == 0) {
    return tail + static_cast<T>(1);
  } else {
    return tail;
  }
}

template <typename T>
GRADLAB_ALWAYS_INLINE T exp_of(T x) {
  using C = ExpConstants<T>;
  x = x < C::LOWEST ? C::LOWEST : (x > C::HIGHEST ? C::HIGHEST : x);  // NaN passes through
  const T n = (x * C::LOG2E + C::ROUND) - C::ROUND;  // x / ln 2 rounded to an integer
  const T r = (x - n * C::LN2_HI) - n * C::LN2_LO;    // NaN for a NaN x, which the result keeps
  const T half = (n * static_cast<T>(0.5) + C::ROUND) - C::ROUND;
  return (taylor_exp<T, 0>(r) * power_of_two(half)) * power_of_two(n - half);
}

// e^y − 1 from the one Taylor series of e^r − 1 (no cancellation: |r| ≤ ln 2 / 2), with n and r as in
// exp_of: e^y − 1 = 2^n (e^r − 1) + (2^n − 1), where 2^n − 1 is exact or nearly so (n ≤ BITS; n = 0
// gives the series itself, full relative precision for small y), else (e^r · 2^n) − 1, where the 1
// hardly counts and 2^n may pass the largest float. One series where the two branches' (the series
// for small y, e^y − 1 otherwise) would be evaluated both in a vectorised loop.
template <typename T>
GRADLAB_ALWAYS_INLINE T expm1_of(T y) {
  using C = ExpConstants<T>;
  const T x = y < C::LOWEST ? C::LOWEST : (y > C::HIGHEST ? C::HIGHEST : y);  // NaN passes through
  const T n = (x * C::LOG2E + C::ROUND) - C::ROUND;
  const T r = (x - n * C::LN2_HI) - n * C::LN2_LO;
  const T p = taylor_exp<T, 1>(r);  // e^r − 1
  const T half = (n * static_cast<T>(0.5) + C::ROUND) - C::ROUND;
  const T low = power_of_two(half), high = power_of_two(n - half);  // 2^n = low · high, each a normal number
  const T moderate = (p * low) * high + (low * high - static_cast<T>(1));
  const T large = ((p + static_cast<T>(1)) * low) * high - static_cast<T>(1);
  return n > static_cast<T>(C::BITS) ? large : moderate;
}

// σ(x) = 1 / (1 + e^{−x}), as torch computes it.
template <typename T>
GRADLAB_ALWAYS_INLINE T sigmoid_of(T x) {
  return static_cast<T>(1) / (static_cast<T>(1) + exp_of(-x));
}

// tanh x = (e^{2x} − 1) / (e^{2x} + 1) = m / (m + 2), m = e^{2x} − 1; |x| ≥ 20 gives ±1 in float and double.
template <typename T>
GRADLAB_ALWAYS_INLINE T tanh_of(T x) {
  const T y = x < -20 ? T(-20) : (x > 20 ? T(20) : x);
  const T m = expm1_of(2 * y);
  return m / (m + static_cast<T>(2));
}

}  // namespace gradlab_steps
