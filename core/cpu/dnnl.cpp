#include "core/cpu/dnnl.h"

#include <list>
#include <mutex>
#include <string>
#include <unordered_map>

#include "core/error.h"
#include "core/shape.h"

namespace sparta::cpu::dnnl_support {
namespace {

using dt = dnnl::memory::data_type;

dnnl::memory::desc md_of(const MatDesc& m) {
  return dnnl::memory::desc(dnnl::memory::dims(m.dims.begin(), m.dims.end()), to_dnnl(m.dtype),
                            dnnl::memory::dims(m.strides.begin(), m.strides.end()));
}

std::string key_of(const MatDesc& a, const MatDesc& b, const MatDesc& c) {
  std::string k;
  for (const MatDesc* m : {&a, &b, &c}) {
    k += std::to_string(int(m->dtype));
    k += ':';
    for (int64_t v : m->dims) k += std::to_string(v) + ',';
    k += '/';
    for (int64_t v : m->strides) k += std::to_string(v) + ',';
    k += ';';
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

bool is_reference(const dnnl::matmul::primitive_desc& pd) {
  return std::string(pd.impl_info_str()).find("ref") != std::string::npos;
}

struct Entry {
  dnnl::matmul prim;
  bool reference;
};

// Least-recently-used cache. A training step reuses a few dozen shapes (forward and both
// backward products per layer); 64 entries hold those without keeping JIT code for every shape
// ever seen. oneDNN keeps its own cache of compiled kernels behind this one.
class PrimitiveCache {
 public:
  Entry get(const MatDesc& a, const MatDesc& b, const MatDesc& c) {
    const std::string key = key_of(a, b, c);
    {
      std::lock_guard<std::mutex> lock(mu_);
      auto it = map_.find(key);
      if (it != map_.end()) {
        order_.splice(order_.begin(), order_, it->second.second);
        return it->second.first;
      }
    }
    // Created outside the lock (JIT compilation takes milliseconds); two threads racing on one
    // key both build it and the second insert is dropped.
    auto pd = make_pd(a, b, c);
    Entry e{dnnl::matmul(pd), is_reference(pd)};
    std::lock_guard<std::mutex> lock(mu_);
    if (map_.count(key) == 0) {
      order_.push_front(key);
      map_.emplace(key, std::make_pair(e, order_.begin()));
      if (map_.size() > kCapacity) {
        map_.erase(order_.back());
        order_.pop_back();
      }
    }
    return e;
  }

 private:
  static constexpr size_t kCapacity = 64;
  std::mutex mu_;
  std::list<std::string> order_;
  std::unordered_map<std::string, std::pair<Entry, std::list<std::string>::iterator>> map_;
};

PrimitiveCache& cache() {
  static PrimitiveCache c;
  return c;
}

std::string describe(const MatDesc& m) { return shape_str(Shape(m.dims.begin(), m.dims.end())); }

}  // namespace

dnnl::engine& engine() {
  static dnnl::engine e(dnnl::engine::kind::cpu, 0);
  return e;
}

dnnl::stream& stream() {
  thread_local dnnl::stream s(engine());
  return s;
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
  const int key = int(in) * 64 + int(out);
  auto it = known.find(key);
  if (it != known.end()) return it->second;
  bool fast = false;
  try {
    MatDesc a{{64, 64}, {64, 1}, in}, b = a, c{{64, 64}, {64, 1}, out};
    fast = !is_reference(make_pd(a, b, c));
  } catch (const dnnl::error&) {
    // oneDNN 2.x refuses bf16/f16 primitives outright on CPUs without the AVX-512 extensions.
    fast = false;
  }
  known[key] = fast;
  return fast;
}

bool matmul(const MatDesc& a, const void* pa, const MatDesc& b, const void* pb, const MatDesc& c, void* pc,
            bool allow_reference) {
  try {
    Entry e = cache().get(a, b, c);
    if (e.reference && !allow_reference) return false;
    dnnl::memory ma(md_of(a), engine(), const_cast<void*>(pa));
    dnnl::memory mb(md_of(b), engine(), const_cast<void*>(pb));
    dnnl::memory mc(md_of(c), engine(), pc);
    dnnl::stream& s = stream();
    e.prim.execute(s, {{DNNL_ARG_SRC, ma}, {DNNL_ARG_WEIGHTS, mb}, {DNNL_ARG_DST, mc}});
    s.wait();
    return true;
  } catch (const dnnl::error& e) {
    SPARTA_FAIL("matmul", "oneDNN: ", e.what(), " (", describe(a), " @ ", describe(b), " -> ", describe(c), ", ",
                dtype_name(a.dtype), ")");
  }
}

}  // namespace sparta::cpu::dnnl_support
