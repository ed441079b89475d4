#include "core/cpu/convert.h"
#include "core/cpu/loop.h"
#include "core/dispatch.h"
#include "core/ops/view/view.h"

namespace sparta::cpu {

void copy_into(const Tensor& dst, const Tensor& src) {
  broadcast_shapes(src.shape(), dst.shape(), "copy");
  SPARTA_DISPATCH_ALL(dst.dtype(), "copy", [&] {
    using O = scalar_t;
    SPARTA_DISPATCH_ALL(src.dtype(), "copy", [&] {
      using I = scalar_t;
      map_elements<O, I>(dst, {&src}, [](I x) { return convert<O>(x); });
    });
  });
}

}  // namespace sparta::cpu
