#include "daemon/prometheus.h"

#include <cmath>
#include <map>
#include <sstream>

namespace sparta::daemon {
namespace {

void header(std::ostringstream& out, const char* name, const char* help) {
  out << "# HELP " << name << " " << help << "\n# TYPE " << name << " gauge\n";
}

std::string number(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  std::ostringstream s;
  s.precision(10);
  s << v;
  return s.str();
}

std::string job_labels(const Job& j) {
  return "job=\"" + std::to_string(j.id) + "\",name=\"" + prometheus_label(j.name) + "\"";
}

}  // namespace

std::string prometheus_label(const std::string& v) {
  std::string out;
  for (char c : v) {
    if (c == '\\') out += "\\\\";
    else if (c == '"') out += "\\\"";
    else if (c == '\n') out += "\\n";
    else out += c;
  }
  return out;
}

std::string prometheus_text(const std::vector<JobSample>& jobs, const Usage& usage) {
  std::ostringstream out;
  std::map<JobState, int> by_state;
  for (JobState s : all_states()) by_state[s] = 0;
  for (const JobSample& s : jobs) ++by_state[s.job.state];

  header(out, "sparta_queue_length", "Jobs waiting in the queue.");
  out << "sparta_queue_length " << by_state[JobState::queued] << "\n";
  header(out, "sparta_jobs", "Jobs recorded by the daemon, by state.");
  for (JobState s : all_states()) out << "sparta_jobs{state=\"" << state_name(s) << "\"} " << by_state[s] << "\n";
  header(out, "sparta_cpu_slots", "CPU job slots of the daemon.");
  out << "sparta_cpu_slots " << usage.cpu_slots << "\n";
  header(out, "sparta_cpu_slots_busy", "CPU job slots in use.");
  out << "sparta_cpu_slots_busy " << usage.cpu_running << "\n";
  header(out, "sparta_gpus", "GPUs the daemon hands out.");
  out << "sparta_gpus " << usage.gpus_total << "\n";
  header(out, "sparta_gpus_busy", "GPUs assigned to running jobs.");
  out << "sparta_gpus_busy " << usage.gpus_busy << "\n";

  header(out, "sparta_job_state", "The job's state (the series with value 1).");
  for (const JobSample& s : jobs) {
    out << "sparta_job_state{" << job_labels(s.job) << ",state=\"" << state_name(s.job.state) << "\"} 1\n";
  }
  header(out, "sparta_job_step", "Last logged optimizer step of the job.");
  for (const JobSample& s : jobs) {
    if (s.last) out << "sparta_job_step{" << job_labels(s.job) << "} " << s.last->step << "\n";
  }
  header(out, "sparta_job_total_steps", "Optimizer steps the job's config asks for.");
  for (const JobSample& s : jobs) out << "sparta_job_total_steps{" << job_labels(s.job) << "} " << s.job.total_steps << "\n";
  header(out, "sparta_job_loss", "Training loss at the job's last logged step.");
  for (const JobSample& s : jobs) {
    if (s.last) out << "sparta_job_loss{" << job_labels(s.job) << "} " << number(s.last->loss) << "\n";
  }
  header(out, "sparta_job_tokens_per_second", "Training throughput at the job's last logged step.");
  for (const JobSample& s : jobs) {
    if (s.last) out << "sparta_job_tokens_per_second{" << job_labels(s.job) << "} " << number(s.last->tokens_per_s) << "\n";
  }
  header(out, "sparta_job_val_loss", "Validation loss at the job's last evaluation in its last logged line.");
  for (const JobSample& s : jobs) {
    if (s.last && s.last->val_loss) out << "sparta_job_val_loss{" << job_labels(s.job) << "} " << number(*s.last->val_loss) << "\n";
  }
  return out.str();
}

}  // namespace sparta::daemon
