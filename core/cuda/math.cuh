#pragma once
// Device maths by type. Inside namespace sparta the Tensor ops (sparta::exp, ...) hide the global
// device functions from unqualified calls, so kernels call these, which name the float or double
// version: m_exp(x), m_log, m_sqrt, m_sin, m_cos, m_tanh, m_erf, m_pow(a, b).
#include <type_traits>

namespace sparta::cuda {

#define SPARTA_MATH1(NAME)                                         \
  template <typename C>                                            \
  __device__ __forceinline__ C m_##NAME(C x) {                     \
    if constexpr (std::is_same_v<C, float>) return ::NAME##f(x);   \
    else return ::NAME(x);                                         \
  }
SPARTA_MATH1(exp)
SPARTA_MATH1(log)
SPARTA_MATH1(sqrt)
SPARTA_MATH1(sin)
SPARTA_MATH1(cos)
SPARTA_MATH1(tanh)
SPARTA_MATH1(erf)
#undef SPARTA_MATH1
template <typename C>
__device__ __forceinline__ C m_pow(C a, C b) {
  if constexpr (std::is_same_v<C, float>) return ::powf(a, b);
  else return ::pow(a, b);
}

}  // namespace sparta::cuda
