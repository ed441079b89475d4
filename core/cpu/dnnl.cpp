#include "core/cpu/dnnl.h"

#include <list>
#include <mutex>
#include <string>
#include <unordered_map>

#include "core/error.h"

namespace sparta::cpu::dnnl_support {
namespace {

using dt = dnnl::memory::data_type;

dnnl::memory::desc md_of(const MatDesc& m) {
  return dnnl::memory::desc({m.batch, m.rows, m.cols}, to_dnnl(m.dtype), {m.sb, m.sr, m.sc});
}

std::string key_of(const MatDesc& a, const MatDesc& b, const MatDesc& c) {
  std::string k;
  for (const MatDesc* m : {&a, &b, &c}) {
    for (int64_t v : {m->batch, m->rows, m->cols, m->sb, m->sr, m->sc, int64_t(m->dtype)}) {
      k += std::to_string(v);
      k += ',';
    }
  }
  return k;
}

dnnl::matmul::primitive_desc make_pd(const MatDesc& a, const MatDesc& b, const MatDesc& c) {
#if DNNL_VERSION_MAJOR >= 3
  return dnnl::matmul::primitive_desc(engine(), md_of(a), md_of(b), md_of(c));
#else
  return dnnl::matmul::primitive_desc(dnnl::matmul::desc(md_of(a), md_of(b), md_of(c)), engine());
#endif
}

// Least-recently-used cache; training reuses a few dozen shapes, so 256 entries is plenty.
class PrimitiveCache {
 public:
  dnnl::matmul get(const MatDesc& a, const MatDesc& b, const MatDesc& c) {
    std::string key = key_of(a, b, c);
    std::lock_guard<std::mutex> lock(mu_);
    auto it = map_.find(key);
    if (it != map_.end()) {
      order_.splice(order_.begin(), order_, it->second.second);
      return it->second.first;
    }
    dnnl::matmul prim(make_pd(a, b, c));
    order_.push_front(key);
    map_.emplace(key, std::make_pair(prim, order_.begin()));
    if (map_.size() > kCapacity) {
      map_.erase(order_.back());
      order_.pop_back();
    }
    return prim;
  }

 private:
  static constexpr size_t kCapacity = 256;
  std::mutex mu_;
  std::list<std::string> order_;
  std::unordered_map<std::string, std::pair<dnnl::matmul, std::list<std::string>::iterator>> map_;
};

PrimitiveCache& cache() {
  static PrimitiveCache c;
  return c;
}

}  // namespace

dnnl::engine& engine() {
  static dnnl::engine e(dnnl::engine::kind::cpu, 0);
  return e;
}

dnnl::memory::data_type to_dnnl(DType t) {
  switch (t) {
    case DType::f32: return dt::f32;
    case DType::bf16: return dt::bf16;
    case DType::f16: return dt::f16;
    default: SPARTA_FAIL("matmul", "oneDNN has no matmul for dtype ", dtype_name(t));
  }
}

bool matmul_is_fast(DType in, DType out) {
  static std::mutex mu;
  static std::unordered_map<int, bool> known;
  std::lock_guard<std::mutex> lock(mu);
  int key = int(in) * 16 + int(out);
  auto it = known.find(key);
  if (it != known.end()) return it->second;
  bool fast = false;
  try {
    MatDesc a{1, 64, 64, 64 * 64, 64, 1, in}, b = a, c{1, 64, 64, 64 * 64, 64, 1, out};
    // oneDNN falls back to a reference kernel ("ref:any") where the CPU lacks the instructions
    // (bf16 without AVX-512); converting to f32 and back is then much faster.
    std::string impl = make_pd(a, b, c).impl_info_str();
    fast = impl.find("ref") == std::string::npos;
  } catch (const dnnl::error&) {
    fast = false;
  }
  known[key] = fast;
  return fast;
}

void matmul(const MatDesc& a, const void* pa, const MatDesc& b, const void* pb, const MatDesc& c, void* pc) {
  try {
    dnnl::matmul prim = cache().get(a, b, c);
    dnnl::memory ma(md_of(a), engine(), const_cast<void*>(pa));
    dnnl::memory mb(md_of(b), engine(), const_cast<void*>(pb));
    dnnl::memory mc(md_of(c), engine(), pc);
    dnnl::stream s(engine());
    prim.execute(s, {{DNNL_ARG_SRC, ma}, {DNNL_ARG_WEIGHTS, mb}, {DNNL_ARG_DST, mc}});
    s.wait();
  } catch (const dnnl::error& e) {
    SPARTA_FAIL("matmul", "oneDNN: ", e.what(), " (", a.batch, "x", a.rows, "x", a.cols, " @ ", b.batch, "x", b.rows,
                "x", b.cols, ")");
  }
}

}  // namespace sparta::cpu::dnnl_support
