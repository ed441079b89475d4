// CUDA joining and indexing ops, embedding and dropout against the CPU backend. Copies must be
// exact; so must index_add and scatter_add, whose CUDA kernels sum each output element's additions
// in index order, as the CPU does; and so must dropout, whose mask is the CPU's Philox stream.
#include <functional>
#include <tuple>

#include "tests/cuda/parity.h"

using namespace sparta;
using namespace sparta::test;

namespace {

// x's values on the GPU as a transposed view of its last two axes.
Tensor gpu_transposed(const Tensor& x) { return transpose(gpu(contiguous(transpose(x, -1, -2))), -1, -2); }

// The three layouts every op is checked on.
const char* kLayouts[] = {"contiguous", "strided", "transposed"};
Tensor on_gpu(const Tensor& x, int layout) {
  if (layout == 1) return gpu_noncontiguous(x);
  if (layout == 2 && x.dim() >= 2) return gpu_transposed(x);
  return gpu(x);
}

Tensor values(const Shape& shape, DType dt) {
  if (is_floating(dt)) return random(shape, dt);
  if (dt == DType::boolean) return cast(random_int(0, 2, shape), dt);
  return random_int(0, 200, shape, dt);
}

void check_same(const Tensor& got, const Tensor& want, const std::string& what) {
  BOOST_CHECK(got.device() == Device::cuda());
  BOOST_CHECK(got.dtype() == want.dtype());
  check_exact(host(got), want, what);
}

const DType kAll[] = {DType::f64, DType::f32, DType::bf16, DType::f16, DType::i32, DType::i64, DType::u8,
                      DType::boolean};
const DType kFloat[] = {DType::f64, DType::f32, DType::bf16, DType::f16};

}  // namespace

BOOST_AUTO_TEST_CASE(concat_matches_cpu, SPARTA_NEEDS_GPU) {
  for (DType dt : kAll) {
    for (int axis : {0, 1, 2}) {
      Shape a{3, 5, 7}, b{3, 5, 7}, c{3, 5, 7};
      a[size_t(axis)] = 2;
      b[size_t(axis)] = 0;  // an empty piece
      c[size_t(axis)] = 9;
      Tensor xa = values(a, dt), xb = values(b, dt), xc = values(c, dt);
      for (int layout = 0; layout < 3; ++layout) {
        std::string what = std::string("concat ") + dtype_name(dt) + " axis " + std::to_string(axis) + " " +
                           kLayouts[layout];
        // Mixed: the first input always contiguous, the others in the layout under test.
        check_same(concat({gpu(xa), on_gpu(xb, layout), on_gpu(xc, layout)}, axis), concat({xa, xb, xc}, axis), what);
      }
    }
  }
  Tensor big1 = random({1 << 20}), big2 = random({333});
  check_same(concat({gpu(big1), gpu(big2)}, 0), concat({big1, big2}, 0), "concat of 1M elements");
  Tensor w1 = random({4096, 3}), w2 = random({4096, 5});
  check_same(concat({gpu(w1), gpu_noncontiguous(w2)}, 1), concat({w1, w2}, 1), "concat of 4096 rows, axis 1");
  check_same(stack({gpu(w1), gpu(w1)}, 1), stack({w1, w1}, 1), "stack");
}

BOOST_AUTO_TEST_CASE(index_select_matches_cpu, SPARTA_NEEDS_GPU) {
  for (DType dt : kAll) {
    for (int axis : {0, 1, 2}) {
      Tensor x = values({6, 7, 9}, dt);
      for (DType it : {DType::i64, DType::i32}) {
        Tensor idx = random_int(0, x.shape(axis), {13}, it);  // repeats
        for (int layout = 0; layout < 3; ++layout) {
          std::string what = std::string("index_select ") + dtype_name(dt) + " axis " + std::to_string(axis) + " " +
                             dtype_name(it) + " " + kLayouts[layout];
          check_same(index_select(on_gpu(x, layout), axis, gpu(idx)), index_select(x, axis, idx), what);
        }
      }
    }
  }
  Tensor empty_idx = from_vector_i64({}, {0});
  Tensor x = random({5, 3});
  check_same(index_select(gpu(x), 0, gpu(empty_idx)), index_select(x, 0, empty_idx), "empty index");
  Tensor table = random({50304, 64}, DType::bf16), rows = random_int(0, 50304, {4099});
  check_same(index_select(gpu(table), 0, gpu(rows)), index_select(table, 0, rows), "4099 rows of a 50304-row table");
}

BOOST_AUTO_TEST_CASE(gather_matches_cpu, SPARTA_NEEDS_GPU) {
  for (DType dt : kAll) {
    for (int axis : {0, 1, 2}) {
      Tensor x = values({6, 7, 9}, dt);
      Shape is{4, 5, 6};  // smaller than x off the axis
      is[size_t(axis)] = 11;
      for (DType it : {DType::i64, DType::i32}) {
        Tensor idx = random_int(0, x.shape(axis), is, it);
        for (int layout = 0; layout < 3; ++layout) {
          std::string what = std::string("gather ") + dtype_name(dt) + " axis " + std::to_string(axis) + " " +
                             dtype_name(it) + " " + kLayouts[layout];
          check_same(gather(on_gpu(x, layout), axis, on_gpu(idx, layout)), gather(x, axis, idx), what);
        }
      }
    }
  }
  Tensor logits = random({4096, 300}), targets = random_int(0, 300, {4096, 1});
  check_same(gather(gpu(logits), 1, gpu(targets)), gather(logits, 1, targets), "gather of 4096 rows");
}

BOOST_AUTO_TEST_CASE(index_add_matches_cpu_bit_for_bit, SPARTA_NEEDS_GPU) {
  for (DType dt : kFloat) {
    for (int axis : {0, 1, 2}) {
      Tensor x = random({6, 7, 9}, dt);
      Shape ss = x.shape();
      ss[size_t(axis)] = 23;
      Tensor src = random(ss, dt);
      for (DType it : {DType::i64, DType::i32}) {
        Tensor idx = random_int(0, x.shape(axis), {23}, it);  // every target repeated
        for (int layout = 0; layout < 3; ++layout) {
          std::string what = std::string("index_add ") + dtype_name(dt) + " axis " + std::to_string(axis) + " " +
                             dtype_name(it) + " " + kLayouts[layout];
          check_same(index_add(on_gpu(x, layout), axis, gpu(idx), on_gpu(src, layout)), index_add(x, axis, idx, src),
                     what);
        }
      }
    }
  }
  // The embedding backward's shape: a large vocabulary, few distinct rows hit many times.
  Tensor x = zeros({50304, 64}), src = random({8192, 64}), idx = random_int(0, 40, {8192});
  Tensor got = index_add(gpu(x), 0, gpu(idx), gpu(src));
  check_same(got, index_add(x, 0, idx, src), "index_add of 8192 rows onto 40 of 50304");
  check_exact(host(index_add(gpu(x), 0, gpu(idx), gpu(src))), host(got), "index_add run twice");
}

BOOST_AUTO_TEST_CASE(scatter_add_matches_cpu_bit_for_bit, SPARTA_NEEDS_GPU) {
  for (DType dt : kFloat) {
    for (int axis : {0, 1, 2}) {
      Tensor x = random({6, 7, 9}, dt);
      Shape is{4, 5, 6};
      is[size_t(axis)] = 17;
      Shape ss = is;
      ss[0] += 1;  // src larger than the index: only its leading block is scattered
      Tensor src = random(ss, dt);
      for (DType it : {DType::i64, DType::i32}) {
        Tensor idx = random_int(0, x.shape(axis), is, it);
        for (int layout = 0; layout < 3; ++layout) {
          std::string what = std::string("scatter_add ") + dtype_name(dt) + " axis " + std::to_string(axis) + " " +
                             dtype_name(it) + " " + kLayouts[layout];
          check_same(scatter_add(on_gpu(x, layout), axis, on_gpu(idx, layout), on_gpu(src, layout)),
                     scatter_add(x, axis, idx, src), what);
        }
      }
    }
  }
  // Along a long axis with few columns, and along the last axis of many rows.
  Tensor x = random({64, 3}), src = random({1 << 18, 3}), idx = random_int(0, 64, {1 << 18, 3});
  check_same(scatter_add(gpu(x), 0, gpu(idx), gpu(src)), scatter_add(x, 0, idx, src), "scatter_add of 786k elements");
  Tensor y = random({4096, 300}), ys = random({4096, 2}), yi = random_int(0, 300, {4096, 2});
  check_same(scatter_add(gpu(y), 1, gpu(yi), gpu(ys)), scatter_add(y, 1, yi, ys), "scatter_add over 4096 rows");
}

BOOST_AUTO_TEST_CASE(gradients_match_cpu, SPARTA_NEEDS_GPU) {
  // index_select's vjp is index_add and gather's is scatter_add (and back): the CUDA gradients
  // are the CPU's bits.
  for (DType dt : {DType::f32, DType::bf16, DType::f64}) {
    Tensor x = random({9, 12}, dt), gi = random_int(0, 9, {31}), g2 = random_int(0, 12, {9, 20});
    Tensor g3 = random_int(0, 9, {30, 12});  // scatter onto x's rows from 30 of src's 31
    Tensor src = random({31, 12}, dt);
    const std::vector<std::function<Tensor(const Tensors&)>> fns = {
        [](const Tensors& in) { return index_select(in[0], 0, in[2]); },
        [](const Tensors& in) { return gather(in[0], 1, in[3]); },
        [](const Tensors& in) { return index_add(in[0], 0, in[2], in[1]); },
        [](const Tensors& in) { return scatter_add(in[0], 0, in[4], in[1]); },
        [](const Tensors& in) { return concat({in[0], in[1]}, 0); },
    };
    const Tensor cots[] = {random({31, 12}, dt), random({9, 20}, dt), random({9, 12}, dt), random({9, 12}, dt),
                           random({40, 12}, dt)};
    for (size_t f = 0; f < fns.size(); ++f) {
      Tensor grads[2][2];
      for (int dev = 0; dev < 2; ++dev) {
        auto put = [&](const Tensor& t) { return dev ? gpu(t) : clone(t); };
        Tensor a = autograd::requires_grad(put(x)), b = autograd::requires_grad(put(src));
        autograd::backward(fns[f]({a, b, put(gi), put(g2), put(g3)}), put(cots[f]));
        for (int i = 0; i < 2; ++i) {
          Tensor g = autograd::grad(i == 0 ? a : b);
          grads[dev][i] = g.defined() ? host(g) : Tensor();
        }
      }
      for (int i = 0; i < 2; ++i) {
        const std::string what = std::string("gradient ") + std::to_string(i) + " of function " + std::to_string(f) +
                                 " " + dtype_name(dt);
        BOOST_CHECK_MESSAGE(grads[0][i].defined() == grads[1][i].defined(), what << ": defined on one device only");
        if (grads[0][i].defined() && grads[1][i].defined()) check_exact(grads[1][i], grads[0][i], what);
      }
    }
  }
}

BOOST_AUTO_TEST_CASE(embedding_forward_and_backward_with_repeated_ids, SPARTA_NEEDS_GPU) {
  for (DType dt : {DType::f32, DType::bf16}) {
    const std::vector<std::tuple<int64_t, int64_t, int64_t, int64_t>> shapes = {
        {1000, 67, 0, 20}, {50304, 64, 0, 50304}, {50304, 64, 50200, 50210}};  // vocab, dim, ids in [lo, hi)
    for (auto [vocab, dim, lo, hi] : shapes) {
      Tensor w = random({vocab, dim}, dt), ids = random_int(lo, hi, {8, 513}), r = random({8, 513, dim}, dt);
      std::string what = std::string("embedding ") + dtype_name(dt) + " vocab " + std::to_string(vocab) + " ids in [" +
                         std::to_string(lo) + ", " + std::to_string(hi) + ")";
      Tensor wc = autograd::requires_grad(clone(w)), wg = autograd::requires_grad(gpu(w));
      Tensor ec = embedding(wc, ids), eg = embedding(wg, gpu(ids));
      check_same(eg, ec, what + " forward");
      autograd::backward(ec, r);
      autograd::backward(eg, gpu(r));
      check_same(autograd::grad(wg), autograd::grad(wc), what + " weight gradient");
    }
  }
  // i32 ids and a strided weight.
  Tensor w = random({300, 40}), ids = random_int(0, 7, {1000}, DType::i32);
  check_same(embedding(gpu_noncontiguous(w), gpu(ids)), embedding(w, ids), "embedding of i32 ids, strided weight");
}

BOOST_AUTO_TEST_CASE(out_of_range_indices_are_errors, SPARTA_NEEDS_GPU) {
  Tensor w = gpu(random({11, 6}));
  check_error([&] { embedding(w, gpu(from_vector_i64({2, 11}, {2}))); }, {"[embedding]", "11", "[0, 11)"});
  check_error([&] { embedding(w, gpu(from_vector_i64({-1, 3}, {2}, DType::i32))); }, {"[embedding]", "-1"});
  check_error([&] { index_select(w, 0, gpu(from_vector_i64({0, 11}, {2}))); }, {"[index_select]", "11", "11"});
  check_error([&] { index_select(w, 1, gpu(from_vector_i64({-2}, {1}))); }, {"[index_select]", "-2"});
  check_error([&] { gather(w, 1, gpu(from_vector_i64({6}, {1, 1}))); }, {"[gather]", "6"});
  check_error([&] { index_add(w, 0, gpu(from_vector_i64({12}, {1})), gpu(random({1, 6}))); }, {"[index_add]", "12"});
  check_error([&] { scatter_add(w, 0, gpu(from_vector_i64({-5}, {1, 1})), gpu(random({1, 1}))); },
              {"[scatter_add]", "-5"});
  // The device is still usable after the errors.
  check_same(index_select(w, 0, gpu(from_vector_i64({10}, {1}))), index_select(host(w), 0, from_vector_i64({10}, {1})),
             "after the errors");
}

BOOST_AUTO_TEST_CASE(dropout_masks_are_the_cpus_bit_for_bit, SPARTA_NEEDS_GPU) {
  for (DType dt : kFloat) {
    for (int64_t n : {int64_t(1), int64_t(3), int64_t(5), int64_t(1027), int64_t(1 << 20) + 3}) {
      for (double p : {0.1, 0.5, 0.9}) {
        Tensor x = random({n}, dt);
        Generator a(run_seed() + 11), b(run_seed() + 11);
        a.set_state(a.seed(), 17);  // a mid-stream offset
        b.set_state(b.seed(), 17);
        std::string what = std::string("dropout ") + dtype_name(dt) + " n " + std::to_string(n) + " p " +
                           std::to_string(p);
        Tensor want = dropout(x, p, &a), got = dropout(gpu(x), p, &b);
        check_same(got, want, what);
        BOOST_CHECK_EQUAL(a.offset(), b.offset());
        // The mask alone (ones in, the scale out) and a second draw, further down the stream.
        check_same(dropout(gpu(ones({n}, dt)), p, &b), dropout(ones({n}, dt), p, &a), what + " mask");
      }
    }
  }
  // A strided input, and the gradient: the same mask on the cotangent.
  Tensor x = random({37, 129}), r = random({37, 129});
  Generator a(5), b(5);
  Tensor xc = autograd::requires_grad(clone(x)), xg = autograd::requires_grad(gpu_noncontiguous(x));
  Tensor yc = dropout(xc, 0.3, &a), yg = dropout(xg, 0.3, &b);
  check_same(yg, yc, "dropout of a strided input");
  autograd::backward(yc, r);
  autograd::backward(yg, gpu(r));
  check_same(autograd::grad(xg), autograd::grad(xc), "dropout gradient");
}
