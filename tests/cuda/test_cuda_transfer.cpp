// Host/device transfers and device memory accounting (stream-ordered pool).
#include "tests/cuda/gpu.h"
#include "tests/support.h"

using namespace sparta;
using namespace sparta::test;

BOOST_AUTO_TEST_CASE(round_trip_keeps_every_bit, SPARTA_NEEDS_GPU) {
  for (DType dt : {DType::f64, DType::f32, DType::bf16, DType::f16, DType::i64, DType::u8}) {
    Tensor x = is_floating(dt) ? random({37, 129}, dt) : random_int(0, 200, {37, 129}, dt);
    Tensor d = to_device(x, Device::cuda());
    BOOST_CHECK(d.device() == Device::cuda());
    check_exact(to_device(d, Device::cpu()), x, std::string("round trip ") + dtype_name(dt));
  }
  // A strided view travels as its logical values.
  Tensor t = noncontiguous(random({5, 6}));
  check_exact(to_device(to_device(t, Device::cuda()), Device::cpu()), t, "strided source");
}

BOOST_AUTO_TEST_CASE(device_memory_is_accounted, SPARTA_NEEDS_GPU) {
  reset_peak_memory(Device::cuda());
  const int64_t before = memory_stats(Device::cuda()).current_bytes;
  {
    Tensor d = empty({1 << 22}, DType::f32, Device::cuda());
    BOOST_CHECK_GE(memory_stats(Device::cuda()).current_bytes - before, int64_t(16) << 20);
  }
  BOOST_CHECK_EQUAL(memory_stats(Device::cuda()).current_bytes, before);
  BOOST_CHECK_GE(memory_stats(Device::cuda()).peak_bytes, int64_t(16) << 20);
}

BOOST_AUTO_TEST_CASE(bad_device_is_a_clear_error, SPARTA_NEEDS_GPU) {
  check_error([] { empty({4}, DType::f32, Device::cuda(cuda::device_count())); }, {"does not exist"});
  check_error([] { add(random({3}), to_device(random({3}), Device::cuda())); }, {"[add]", "different devices"});
}
