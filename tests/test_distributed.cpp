// Data parallelism over MPI on the CPU, through the sparta program under `mpirun -np 2`:
// - two ranks with batch b (and gradient accumulation, and many small buckets) end 20 steps with
//   the parameters of one process with batch 2b, to float tolerance (and far from batch b alone);
// - a run checkpointed by two ranks resumes in one process and ends where the others do;
// - a rank killed mid-run ends the job within 60 s with a message naming it.
// SPARTA_BIN and SPARTA_MPIEXEC come from ctest (tests/CMakeLists.txt).
#include <boost/test/unit_test.hpp>

#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <set>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>

#include "core/ops.h"
#include "tests/child_process.h"
#include "tests/dist_support.h"
#include "tests/temp_dir.h"
#include "train/checkpoint.h"
#include "train/dist/sharded_optimizer.h"

namespace fs = std::filesystem;
using namespace sparta;
using namespace sparta::test;

namespace {

std::string env_or_fail(const char* name) {
  const char* v = std::getenv(name);
  BOOST_TEST_REQUIRE(v != nullptr, name << " is not set (ctest sets it)");
  return v;
}

// A scratch directory with a small corpus and a config of a tiny model.
struct Workspace {
  TempDir tmp{"dist"};
  const fs::path dir = tmp.path;
  Workspace() {
    write_dist_corpus(dir / "corpus.txt", 6000);
    std::ofstream cfg(dir / "tiny.yaml");
    cfg << "name: tiny\nseed: 7\n"
           "model: {d_model: 32, n_layers: 2, n_heads: 2, seq_len: 32, block: 16, dropout: 0.0}\n"
           "data: {path: " << (dir / "corpus.txt").string() << ", val_fraction: 0.1, prefetch: 2}\n"
           "optimizer: {name: sgd, lr: 0.05, momentum: 0.9, weight_decay: 0.01}\n"
           "schedule: {name: cosine, warmup: 3}\n"
           "train: {steps: 20, batch_size: 2, grad_accum: 2, eval_every: 0}\n"
           "logging: {every: 5, tensorboard: false}\n"
           "checkpoint: {every: 10, keep_last: 5}\n"
           "distributed: {bucket_mb: 0.01}\n";
  }

  // `[mpirun -np N] sparta <args>`, output in <dir>/<log>; returns the exit status.
  int run(int np, const std::string& args, const std::string& log) const {
    std::string cmd;
    if (np > 0)
      cmd = env_or_fail("SPARTA_MPIEXEC") + " --allow-run-as-root --oversubscribe -np " + std::to_string(np) + " ";
    cmd += sparta_bin() + " " + args + " > " + (dir / log).string() + " 2>&1";
    const int status = std::system(cmd.c_str());
    const int rc = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    if (rc != 0) BOOST_TEST_MESSAGE(cmd << " exited with " << rc << ":\n" << read_file((dir / log).string()));
    return rc;
  }
  std::string train(const std::string& name, const std::string& overrides) const {
    return "train " + (dir / "tiny.yaml").string() + " --runs " + (dir / "runs").string() + " name=" + name + " " +
           overrides;
  }
  train::NamedTensors params(const std::string& run, int step) const { return checkpoint_params(dir / "runs", run, step); }
};

// Summation order only: the two runs see the same samples. (SGD keeps rounding differences at
// their size; AdamW divides a gradient by its own magnitude, which magnifies the rounding of
// near-zero gradients such as the key biases', so it gets a tolerance of its own.)
constexpr double kTolerance = 1e-6;
constexpr double kAdamTolerance = 2e-4;

}  // namespace

BOOST_AUTO_TEST_CASE(two_ranks_match_one_process_with_twice_the_batch) {
  Workspace w;
  BOOST_TEST_REQUIRE(w.run(2, w.train("ddp", "train.batch_size=2"), "ddp.log") == 0);
  BOOST_TEST_REQUIRE(w.run(0, w.train("single", "train.batch_size=4"), "single.log") == 0);
  BOOST_TEST_REQUIRE(w.run(0, w.train("half", "train.batch_size=2"), "half.log") == 0);
  const double d = max_difference(w.params("ddp", 20), w.params("single", 20));
  BOOST_TEST_MESSAGE("2 ranks x batch 2 against 1 x batch 4: max |difference| " << d);
  BOOST_TEST(d < kTolerance);
  // Activation checkpointing backpropagates inside backward: the reduction still waits for it all.
  BOOST_TEST_REQUIRE(w.run(2, w.train("ckpt", "train.batch_size=2 model.checkpoint_activations=all"), "ckpt.log") == 0);
  BOOST_TEST(max_difference(w.params("ckpt", 20), w.params("single", 20)) < kTolerance);
  // The comparison can fail: one process with batch b alone ends somewhere else.
  const double far = max_difference(w.params("half", 20), w.params("single", 20));
  BOOST_TEST(far > 100 * kTolerance);

  // Rank 0 alone wrote the run directory: one metrics line per logged step, the world recorded.
  const std::string metrics = read_file((w.dir / "runs/ddp/metrics.jsonl").string());
  BOOST_TEST(std::count(metrics.begin(), metrics.end(), '\n') == 4);
  BOOST_TEST(read_file((w.dir / "runs/ddp/config.yaml").string()).find("world_size: 2") != std::string::npos);
  BOOST_TEST(read_file((w.dir / "ddp.log").string()).find("2 processes over mpi") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(two_ranks_match_one_process_under_adamw) {
  Workspace w;
  const std::string adam = " optimizer.name=adamw optimizer.lr=0.002";
  BOOST_TEST_REQUIRE(w.run(2, w.train("ddp", "train.batch_size=2" + adam), "ddp.log") == 0);
  BOOST_TEST_REQUIRE(w.run(0, w.train("single", "train.batch_size=4" + adam), "single.log") == 0);
  const double d = max_difference(w.params("ddp", 20), w.params("single", 20));
  BOOST_TEST_MESSAGE("AdamW, 2 ranks x batch 2 against 1 x batch 4: max |difference| " << d);
  BOOST_TEST(d < kAdamTolerance);
}

BOOST_AUTO_TEST_CASE(bf16_reduction_stays_close) {
  Workspace w;
  BOOST_TEST_REQUIRE(w.run(2, w.train("ddp", "train.batch_size=2 distributed.reduce_dtype=bf16"), "ddp.log") == 0);
  BOOST_TEST_REQUIRE(w.run(0, w.train("single", "train.batch_size=4"), "single.log") == 0);
  const double d = max_difference(w.params("ddp", 20), w.params("single", 20));
  BOOST_TEST_MESSAGE("bf16 gradient averaging: max |difference| " << d);
  BOOST_TEST(d > 10 * kTolerance);  // it did round
  BOOST_TEST(d < 1e-2);
}

BOOST_AUTO_TEST_CASE(parameters_are_partitioned_largest_first_onto_the_lightest_rank) {
  auto p = [](int64_t n) { return zeros({n}); };
  const train::NamedTensors params{{"a", p(10)}, {"b", p(40)}, {"c", p(30)}, {"d", p(20)}, {"e", p(5)}};
  // b (40) -> 0, c (30) -> 1, d (20) -> 1 (30 < 40), a (10) -> 0 (40 < 50), e (5) -> 0 (50 = 50: lowest).
  BOOST_TEST((train::dist::partition_parameters(params, 2) == std::vector<int>{0, 0, 1, 1, 0}));
  BOOST_TEST((train::dist::partition_parameters(params, 1) == std::vector<int>(5, 0)));
  // Every rank gets a parameter when there are enough of them.
  const std::vector<int> five = train::dist::partition_parameters(params, 5);
  BOOST_TEST(std::set<int>(five.begin(), five.end()).size() == 5u);
}

// ZeRO stage 1: each rank steps its share of the parameters and broadcasts it. The same sums in
// the same order: bit-identical to the unsharded job, parameters and the checkpoint's optimizer
// state (gathered from the owners) alike; that checkpoint resumes in one unsharded process.
BOOST_AUTO_TEST_CASE(zero1_matches_the_unsharded_job_and_resumes_unsharded) {
  Workspace w;
  const std::string adam = " train.batch_size=2 optimizer.name=adamw optimizer.lr=0.002";
  BOOST_TEST_REQUIRE(w.run(2, w.train("zero", "distributed.zero1=true" + adam), "zero.log") == 0);
  BOOST_TEST_REQUIRE(w.run(2, w.train("ddp", adam), "ddp.log") == 0);
  BOOST_TEST(max_difference(w.params("zero", 20), w.params("ddp", 20)) == 0);
  const train::NamedTensors zs = checkpoint_optimizer(w.dir / "runs", "zero", 20),
                            ds = checkpoint_optimizer(w.dir / "runs", "ddp", 20);
  BOOST_TEST(zs.size() == ds.size());  // exp_avg and exp_avg_sq of every parameter, and the step
  BOOST_TEST(max_difference(zs, ds) == 0);
  BOOST_TEST(read_file((w.dir / "runs/zero/config.yaml").string()).find("zero1: true") != std::string::npos);
  BOOST_TEST(read_file((w.dir / "zero.log").string()).find("sharded over the ranks (ZeRO-1)") != std::string::npos);
  BOOST_TEST(read_file((w.dir / "ddp.log").string()).find("ZeRO-1") == std::string::npos);

  BOOST_TEST_REQUIRE(w.run(2, w.train("half", "distributed.zero1=true" + adam) + " --stop-after 10", "half.log") == 0);
  BOOST_TEST_REQUIRE(w.run(0, "resume " + (w.dir / "runs/half").string() + " train.batch_size=4 distributed.zero1=false", "resume.log") == 0);
  const double d = max_difference(w.params("half", 20), w.params("ddp", 20));
  BOOST_TEST_MESSAGE("ZeRO-1 on 2 ranks for 10 steps, then 1 unsharded process: max |difference| " << d);
  BOOST_TEST(d < kAdamTolerance);
}

BOOST_AUTO_TEST_CASE(resumes_with_another_world_size) {
  Workspace w;
  BOOST_TEST_REQUIRE(w.run(2, w.train("ddp", "train.batch_size=2") + " --stop-after 10", "first.log") == 0);
  BOOST_TEST_REQUIRE(fs::exists(w.dir / "runs/ddp/checkpoints/step_00000010.h5"));
  BOOST_TEST(!fs::exists(w.dir / "runs/ddp/checkpoints/step_00000020.h5"));
  // The cursor counts global samples: one process with the global batch continues the stream.
  BOOST_TEST_REQUIRE(w.run(0, "resume " + (w.dir / "runs/ddp").string() + " train.batch_size=4", "resume.log") == 0);
  BOOST_TEST_REQUIRE(w.run(0, w.train("single", "train.batch_size=4"), "single.log") == 0);
  const double d = max_difference(w.params("ddp", 20), w.params("single", 20));
  BOOST_TEST_MESSAGE("2 ranks for 10 steps then 1 for 10, against 1 for 20: max |difference| " << d);
  BOOST_TEST(d < kTolerance);
  BOOST_TEST(read_file((w.dir / "runs/ddp/config.yaml").string()).find("world_size: 1") != std::string::npos);
}

namespace {

// A long `mpirun -np 2` job in the background, its rank 1, and how long the job takes to end.
struct LongJob {
  const Workspace& w;
  std::string log;
  pid_t mpirun = 0, rank1 = 0;

  LongJob(const Workspace& ws, const std::string& overrides) : w(ws), log((ws.dir / "long.log").string()) {
    const std::string pid_file = (w.dir / "mpirun.pid").string();
    const std::string cmd = env_or_fail("SPARTA_MPIEXEC") + " --allow-run-as-root --oversubscribe -np 2 " +
                            sparta_bin() + " " +
                            w.train("long", "train.steps=100000 checkpoint.every=0 " + overrides) + " > " + log +
                            " 2>&1 & echo $! > " + pid_file;
    BOOST_TEST_REQUIRE(std::system(cmd.c_str()) == 0);
    mpirun = pid_t(std::stol(read_file(pid_file)));
    // Until both ranks train (rank 0 has logged step 5) and rank 1 is found.
    for (int i = 0; i < 600 && (rank1 == 0 || read_file(log).find("step 5/") == std::string::npos); ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
      if (rank1 == 0) rank1 = find_rank1();
    }
    BOOST_TEST_REQUIRE(rank1 != 0);
  }

  // The child of mpirun whose environment says it is rank 1.
  pid_t find_rank1() const {
    for (const auto& e : fs::directory_iterator("/proc")) {
      const std::string name = e.path().filename().string();
      if (name.find_first_not_of("0123456789") != std::string::npos) continue;
      std::istringstream stat(read_file(e.path().string() + "/stat"));
      std::string pid, comm, state, ppid;
      stat >> pid >> comm >> state >> ppid;
      if (ppid != std::to_string(mpirun)) continue;
      const std::string environ = read_file(e.path().string() + "/environ");
      if (environ.find(std::string("OMPI_COMM_WORLD_RANK=1") + '\0') != std::string::npos) return pid_t(std::stol(pid));
    }
    return 0;
  }

  bool running() const {
    // mpirun was started by a shell that has exited: it is not our child, and may linger as a zombie.
    if (::kill(mpirun, 0) != 0) return false;
    return read_file("/proc/" + std::to_string(mpirun) + "/stat").find(") Z") == std::string::npos;
  }

  // Seconds until mpirun ends (at most `limit`; then it is killed and the result is `limit`).
  double wait_end(double limit) {
    const auto t0 = std::chrono::steady_clock::now();
    auto since = [&] { return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(); };
    while (running() && since() < limit) std::this_thread::sleep_for(std::chrono::milliseconds(100));
    const double t = since();
    if (running()) {
      ::kill(mpirun, SIGKILL);
      ::kill(rank1, SIGKILL);
    }
    BOOST_TEST_MESSAGE("the job ended " << t << " s later:\n" << read_file(log));
    return t;
  }
};

}  // namespace

BOOST_AUTO_TEST_CASE(a_killed_rank_ends_the_job_naming_it) {
  Workspace w;
  LongJob job(w, "");
  BOOST_TEST_REQUIRE(::kill(job.rank1, SIGKILL) == 0);
  BOOST_TEST(job.wait_end(60) < 60);
  // mpirun's own report: "mpirun noticed that process rank 1 with PID ... exited on signal 9 (Killed)."
  BOOST_TEST(read_file(job.log).find("rank 1 with PID") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(a_hung_rank_times_out_naming_what_was_awaited) {
  Workspace w;
  LongJob job(w, "distributed.timeout_s=3");
  BOOST_TEST_REQUIRE(::kill(job.rank1, SIGSTOP) == 0);  // alive, silent: mpirun cannot tell
  BOOST_TEST(job.wait_end(60) < 30);
  ::kill(job.rank1, SIGKILL);
  const std::string out = read_file(job.log);
  BOOST_TEST(out.find("[dist] rank 0: ") != std::string::npos);
  BOOST_TEST(out.find("made no progress for 3 s (distributed.timeout_s)") != std::string::npos);
}
