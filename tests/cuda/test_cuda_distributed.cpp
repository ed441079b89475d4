// Data parallelism over NCCL, launched as torchrun does (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR,
// MASTER_PORT; the NCCL id over sparta's TCP rendezvous): two `sparta train` processes on cuda:0
// and cuda:1 with batch b end 20 steps with the parameters of one process with batch 2b, to float
// tolerance; and when one rank is killed the other exits within 60 s naming it. Needs two GPUs
// (skipped otherwise) and SPARTA_BIN (ctest sets it).
#include <boost/test/unit_test.hpp>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <thread>

#include "core/cuda/runtime.h"
#include "core/ops.h"
#include "autograd/autograd.h"
#include "nn/transformer.h"
#include "train/checkpoint.h"
#include "train/dist/backends.h"
#include "train/dist/reducer.h"
#include "tests/child_process.h"
#include "tests/dist_support.h"
#include "tests/temp_dir.h"

namespace fs = std::filesystem;
using namespace sparta;
using namespace sparta::test;

namespace {

struct two_gpus {
  boost::test_tools::assertion_result operator()(boost::unit_test::test_unit_id) const {
    boost::test_tools::assertion_result r(cuda::device_count() >= 2);
    r.message() << "fewer than two CUDA devices visible";
    return r;
  }
};

struct Workspace {
  TempDir tmp{"nccl"};
  const fs::path dir = tmp.path;
  Workspace() {
    write_dist_corpus(dir / "corpus.txt", 20000);
    std::ofstream cfg(dir / "tiny.yaml");
    cfg << "name: tiny\nseed: 7\ndevice: cuda\n"
           "model: {d_model: 64, n_layers: 2, n_heads: 4, seq_len: 64, block: 64, dropout: 0.0}\n"
           "data: {path: " << (dir / "corpus.txt").string() << ", val_fraction: 0.1, prefetch: 2}\n"
           "optimizer: {name: sgd, lr: 0.05, momentum: 0.9, weight_decay: 0.01}\n"
           "schedule: {name: cosine, warmup: 3}\n"
           "train: {steps: 20, batch_size: 4, grad_accum: 2, eval_every: 10}\n"
           "logging: {every: 5, tensorboard: false}\n"
           "checkpoint: {every: 10, keep_last: 5}\n"
           "distributed: {bucket_mb: 0.05}\n";
  }

  // `sparta train tiny.yaml --runs <dir>/runs name=<name> <overrides>` in the background with
  // `env` added, output in <dir>/<name>.<rank>.log.
  pid_t start(const std::string& name, const std::vector<std::string>& overrides,
              const std::map<std::string, std::string>& env, const std::string& log) const {
    std::vector<std::string> args{sparta_bin(), "train", (dir / "tiny.yaml").string(), "--runs", (dir / "runs").string(),
                                  "name=" + name};
    args.insert(args.end(), overrides.begin(), overrides.end());
    const std::string out = (dir / log).string();
    return spawn(args, [&] {
      for (const auto& [k, v] : env) ::setenv(k.c_str(), v.c_str(), 1);
      return std::freopen(out.c_str(), "w", stdout) && std::freopen(out.c_str(), "a", stderr);
    });
  }
  // Two ranks launched as torchrun would.
  std::vector<pid_t> start_pair(const std::string& name, const std::vector<std::string>& overrides) const {
    const std::string port = std::to_string(free_port());
    std::vector<pid_t> pids;
    for (int r = 0; r < 2; ++r)
      pids.push_back(start(name, overrides,
                           {{"WORLD_SIZE", "2"}, {"RANK", std::to_string(r)}, {"LOCAL_RANK", std::to_string(r)},
                            {"MASTER_ADDR", "127.0.0.1"}, {"MASTER_PORT", port}},
                           name + "." + std::to_string(r) + ".log"));
    return pids;
  }
  train::NamedTensors params(const std::string& run, int step) const { return checkpoint_params(dir / "runs", run, step); }
};

}  // namespace

// The NCCL communicator and the reducer in a world of one GPU (what a one-GPU machine can check):
// its collectives are identities, so gradients after a reducing backward equal those without one,
// which exercises the communication stream, its events and the buckets' copies on the device.
BOOST_AUTO_TEST_SUITE(nccl_world_of_one, *boost::unit_test::precondition([](boost::unit_test::test_unit_id) {
                        return boost::test_tools::assertion_result(cuda::device_count() >= 1);
                      }))

BOOST_AUTO_TEST_CASE(collectives_and_reducer_on_one_gpu) {
  train::dist::LaunchInfo l;
  l.launcher = train::dist::Launcher::env;
  l.master_addr = "127.0.0.1";
  l.master_port = free_port();
  auto comm = train::dist::make_nccl_communicator(l, Device::cuda(0), 30, nullptr);
  BOOST_TEST(comm->size() == 1);
  Tensor t = to_device(arange(0, 1000, 1, DType::f32), Device::cuda(0));
  comm->all_reduce(t, train::dist::ReduceOp::avg, "a test tensor");
  comm->broadcast(t, 0, "a test tensor");
  BOOST_TEST(to_device(t, Device::cpu()).to_vector<float>()[999] == 999.0f);
  std::vector<double> host{1.5, -2};
  comm->all_reduce_host(host, train::dist::ReduceOp::sum, "test values");
  BOOST_TEST(host[0] == 1.5);
  comm->barrier("a test barrier");

  nn::TransformerConfig c;
  c.vocab_size = 64;
  c.d_model = 64;
  c.n_layers = 2;
  c.n_heads = 4;
  c.max_seq_len = 64;
  c.attention = {nn::parse_pattern("dense")};
  for (const train::ReduceDType dtype : {train::ReduceDType::f32, train::ReduceDType::bf16}) {
    Generator g(3);
    nn::SparseTransformer model(c, &g);
    model.to(Device::cuda(0));
    Tensor x = to_device(randint(0, 64, {4, 64}, DType::i64, &g), Device::cuda(0));
    Tensor y = to_device(randint(0, 64, {4, 64}, DType::i64, &g), Device::cuda(0));
    const auto params = model.named_parameters();
    autograd::backward(model.loss(x, y));
    std::vector<Tensor> plain;
    for (const auto& [name, p] : params) {
      plain.push_back(to_device(autograd::grad(p), Device::cpu()));
      autograd::zero_grad(p);
    }
    train::dist::GradReducer reducer(comm, params, 0.02, dtype);
    BOOST_TEST(reducer.bucket_count() > 2);
    // Two micro-steps, the first without communication: the sum of both is reduced.
    reducer.set_sync(false);
    autograd::backward(model.loss(x, y));
    reducer.set_sync(true);
    autograd::backward(model.loss(x, y));
    const double tol = dtype == train::ReduceDType::f32 ? 1e-5 : 1e-2;
    for (size_t i = 0; i < params.size(); ++i) {
      Tensor reduced = to_device(autograd::grad(params[i].second), Device::cpu());
      const double err = max(abs(reduced - plain[i] * 2.0)).item<double>();
      const double scale = max(abs(plain[i])).item<double>() * 2 + 1e-12;
      BOOST_TEST(err <= tol * scale, params[i].first << ": " << err << " against a gradient of size " << scale);
    }
  }
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(nccl, *boost::unit_test::precondition(two_gpus()))

BOOST_AUTO_TEST_CASE(two_gpus_match_one_with_twice_the_batch) {
  Workspace w;
  const std::vector<pid_t> pair = w.start_pair("ddp", {"train.batch_size=4"});
  const int rc0 = exit_status(pair[0]), rc1 = exit_status(pair[1]);
  BOOST_TEST_REQUIRE((rc0 == 0 && rc1 == 0), "ranks exited with " << rc0 << ", " << rc1 << ":\n"
                                                                   << read_file(w.dir / "ddp.0.log")
                                                                   << read_file(w.dir / "ddp.1.log"));
  BOOST_TEST_REQUIRE(exit_status(w.start("single", {"train.batch_size=8"}, {}, "single.log")) == 0,
                     read_file(w.dir / "single.log"));
  BOOST_TEST_REQUIRE(exit_status(w.start("half", {"train.batch_size=4"}, {}, "half.log")) == 0);
  const double d = max_difference(w.params("ddp", 20), w.params("single", 20));
  BOOST_TEST_MESSAGE("2 GPUs x batch 4 against 1 x batch 8: max |difference| " << d);
  BOOST_TEST(d < 1e-5);
  BOOST_TEST(max_difference(w.params("half", 20), w.params("single", 20)) > 1e-3);
  BOOST_TEST(read_file(w.dir / "ddp.0.log").find("2 processes over nccl") != std::string::npos);
  BOOST_TEST(read_file(w.dir / "runs/ddp/config.yaml").find("world_size: 2") != std::string::npos);
}

// ZeRO-1 over NCCL: the same sums as the unsharded pair (to the tolerance of two GPU runs, whose
// atomics may order additions differently), with the state sharded.
BOOST_AUTO_TEST_CASE(zero1_pair_matches_the_unsharded_pair) {
  Workspace w;
  const std::vector<std::string> adam{"train.batch_size=4", "optimizer.name=adamw", "optimizer.lr=0.002"};
  std::vector<std::string> sharded = adam;
  sharded.push_back("distributed.zero1=true");
  const std::vector<pid_t> plain = w.start_pair("ddp", adam);
  BOOST_TEST_REQUIRE((exit_status(plain[0]) == 0 && exit_status(plain[1]) == 0), read_file(w.dir / "ddp.0.log"));
  const std::vector<pid_t> zero = w.start_pair("zero", sharded);
  BOOST_TEST_REQUIRE((exit_status(zero[0]) == 0 && exit_status(zero[1]) == 0), read_file(w.dir / "zero.0.log")
                                                                                   << read_file(w.dir / "zero.1.log"));
  const double d = max_difference(w.params("zero", 20), w.params("ddp", 20));
  BOOST_TEST_MESSAGE("ZeRO-1 on 2 GPUs against the unsharded pair: max |difference| " << d);
  BOOST_TEST(d < 1e-5);
  BOOST_TEST(read_file(w.dir / "zero.0.log").find("sharded over the ranks (ZeRO-1)") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(bf16_reduction_runs) {
  Workspace w;
  const std::vector<pid_t> pair = w.start_pair("ddp", {"train.batch_size=4", "distributed.reduce_dtype=bf16"});
  BOOST_TEST(exit_status(pair[0]) == 0, read_file(w.dir / "ddp.0.log"));
  BOOST_TEST(exit_status(pair[1]) == 0, read_file(w.dir / "ddp.1.log"));
}

BOOST_AUTO_TEST_CASE(a_killed_rank_is_named_by_the_other_within_60_s) {
  Workspace w;
  const std::vector<pid_t> pair = w.start_pair("long", {"train.steps=1000000", "checkpoint.every=0"});
  for (int i = 0; i < 1200 && read_file(w.dir / "long.0.log").find("step 10/") == std::string::npos; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  BOOST_TEST_REQUIRE(read_file(w.dir / "long.0.log").find("step 10/") != std::string::npos,
                     read_file(w.dir / "long.0.log") << read_file(w.dir / "long.1.log"));
  ::kill(pair[1], SIGKILL);
  const auto t0 = std::chrono::steady_clock::now();
  int status = -1;
  while (std::chrono::steady_clock::now() - t0 < std::chrono::seconds(60)) {
    int st = 0;
    if (::waitpid(pair[0], &st, WNOHANG) == pair[0]) {
      status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (status < 0) ::kill(pair[0], SIGKILL);
  exit_status(pair[1]);
  const std::string out = read_file(w.dir / "long.0.log");
  BOOST_TEST_MESSAGE("rank 0 ended " << seconds << " s after rank 1 was killed, status " << status);
  BOOST_TEST(status == 1, out);
  BOOST_TEST(out.find("[dist] rank 0: rank 1 lost") != std::string::npos, out);
}

BOOST_AUTO_TEST_SUITE_END()
