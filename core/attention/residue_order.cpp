#include "core/attention/residue_order.h"

namespace sparta::attn {

int64_t residue_stride(const BlockLayout& s) {
  const int64_t n = s.seq_len;
  if (s.q_pos.empty() || s.k_pos != s.q_pos || int64_t(s.q_pos.size()) != n || s.n_keys != n || n < 2 ||
      n >= (int64_t(1) << 31))
    return 0;
  const int64_t l = s.q_pos[1];  // class 0's second token (1 when every class has one)
  if (l < 1 || l >= n) return 0;
  const ResidueOrder order = ResidueOrder::of(n, l);
  for (int64_t p = 0; p < n; ++p)
    if (s.q_pos[size_t(p)] != order(p)) return 0;
  return l;
}

}  // namespace sparta::attn
