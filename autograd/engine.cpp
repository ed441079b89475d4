#include <atomic>
#include <queue>
#include <unordered_map>
#include <unordered_set>

#include "autograd/autograd.h"
#include "core/ops.h"

namespace sparta::autograd {
namespace {

thread_local bool t_grad_enabled = true;
thread_local std::vector<std::function<void()>> t_post_backward;
// Backward passes running on this thread: activation checkpointing (nn/checkpoint.cpp) runs one
// inside a vjp, and post-backward callbacks belong to the outermost pass.
thread_local int t_backward_depth = 0;
std::atomic<uint64_t> g_sequence{0};

void record(const std::shared_ptr<Primitive>& p, const Tensors& inputs, Tensors& outputs) {
  if (!t_grad_enabled || !p->differentiable()) return;
  std::vector<int> argnums;
  for (size_t i = 0; i < inputs.size(); ++i) {
    if (requires_grad_of(inputs[i])) argnums.push_back(int(i));
  }
  if (argnums.empty()) return;
  auto node = std::make_shared<Node>();
  node->primitive = p;
  node->inputs = inputs;
  node->argnums = std::move(argnums);
  node->sequence = g_sequence.fetch_add(1);
  for (const Tensor& t : inputs) node->primals.push_back(t.defined() ? t.detach() : Tensor());
  for (size_t k = 0; k < outputs.size(); ++k) {
    // An output that is one of the inputs' handles gets its own, or the input's history is lost.
    for (const Tensor& t : inputs) {
      if (t.defined() && outputs[k].is_same(t)) outputs[k] = outputs[k].detach();
    }
    node->outputs.push_back(outputs[k].detach());
    if (!is_floating(outputs[k].dtype())) continue;
    AutogradMeta& m = ensure_meta(outputs[k]);
    m.requires_grad = true;
    m.grad_fn = node;
    m.output_nr = int(k);
  }
}

struct Installer {
  Installer() { detail::set_record_hook(&record); }
};

// A leaf owns its gradient buffer and adds into it in place. vjps may hand one tensor to several
// inputs, so a gradient is copied unless nothing else can reach its memory: its only handle (the
// caller moved it in), over a whole storage that no other tensor shares. Taking such a gradient
// as is saves a copy of every parameter's gradient per backward pass.
void accumulate_leaf(Tensor& slot, Tensor g) {
  if (slot.defined()) {
    add_(slot, g);
    return;
  }
  const bool sole = g.impl_ptr().use_count() == 1 && g.storage().use_count() == 1 && g.is_contiguous() &&
                    g.offset() == 0 && g.nbytes() == g.storage()->nbytes();
  slot = sole ? g.detach() : contiguous(clone(g.detach()));
}

void accumulate(Tensor& slot, const Tensor& g) { slot = slot.defined() ? add(slot, g) : g; }

}  // namespace

void install() { static Installer once; }

// Static initialisation: linking autograd is enough to get recording.
static const bool g_installed = (install(), true);

bool grad_enabled() { return t_grad_enabled; }
void set_grad_enabled(bool e) { t_grad_enabled = e; }

AutogradMeta* meta_of(const Tensor& t) {
  if (!t.defined()) return nullptr;
  return static_cast<AutogradMeta*>(t.impl().autograd.get());
}

AutogradMeta& ensure_meta(const Tensor& t) {
  auto& slot = t.impl().autograd;
  if (!slot) slot = std::make_shared<AutogradMeta>();
  return static_cast<AutogradMeta&>(*slot);
}

Tensor& requires_grad(Tensor& t, bool flag) {
  install();
  SPARTA_CHECK(!flag || is_floating(t.dtype()), "requires_grad", "only floating tensors can require grad, got ",
               dtype_name(t.dtype()));
  AutogradMeta& m = ensure_meta(t);
  SPARTA_CHECK(!m.grad_fn, "requires_grad", "can only be set on leaf tensors (this one was computed by ",
               m.grad_fn->primitive->name(), ")");
  m.requires_grad = flag;
  return t;
}

Tensor requires_grad(Tensor&& t, bool flag) {
  Tensor r = std::move(t);
  requires_grad(r, flag);
  return r;
}

bool requires_grad_of(const Tensor& t) {
  AutogradMeta* m = meta_of(t);
  return m && m->requires_grad;
}

bool is_leaf(const Tensor& t) {
  AutogradMeta* m = meta_of(t);
  return !m || !m->grad_fn;
}

Tensor grad(const Tensor& t) {
  AutogradMeta* m = meta_of(t);
  return m ? m->grad : Tensor();
}

void set_grad(const Tensor& t, const Tensor& g) { ensure_meta(t).grad = g; }

void zero_grad(const Tensor& t) {
  if (AutogradMeta* m = meta_of(t)) m->grad = Tensor();
}

void register_grad_ready_hook(const Tensor& leaf, std::function<void(Tensor&)> hook) {
  AutogradMeta& m = ensure_meta(leaf);
  SPARTA_CHECK(!m.grad_fn, "register_grad_ready_hook", "only leaves have grad-ready hooks");
  m.grad_ready_hooks.push_back(std::move(hook));
}

void queue_post_backward_callback(std::function<void()> cb) { t_post_backward.push_back(std::move(cb)); }

void backward(const Tensor& root, const Tensor& gradient) { backward(Tensors{root}, Tensors{gradient}); }

void backward(const Tensors& roots, const Tensors& gradients) {
  SPARTA_CHECK(roots.size() == gradients.size(), "backward", roots.size(), " roots but ", gradients.size(),
               " gradients");
  NoGradGuard no_grad;  // the vjps themselves are not recorded
  struct Depth {
    Depth() { ++t_backward_depth; }
    ~Depth() { --t_backward_depth; }
  } depth;

  struct Pending {
    Tensors grads;
    int deps = 0;
  };
  std::unordered_map<Node*, Pending> pending;
  std::unordered_map<AutogradMeta*, int> leaf_deps;
  std::unordered_map<AutogradMeta*, Tensor> leaf_tensor;

  // Discover the graph and count, for every node and leaf, the edges that will bring it a gradient.
  std::vector<Node*> stack;
  std::unordered_set<Node*> seen;
  auto visit_input = [&](const Tensor& t) {
    AutogradMeta* m = meta_of(t);
    if (!m || !m->requires_grad) return;
    if (m->grad_fn) {
      Node* n = m->grad_fn.get();
      pending[n].deps++;
      if (seen.insert(n).second) stack.push_back(n);
    } else {
      leaf_deps[m]++;
      leaf_tensor.emplace(m, t);
    }
  };
  for (size_t i = 0; i < roots.size(); ++i) {
    const Tensor& r = roots[i];
    SPARTA_CHECK(requires_grad_of(r), "backward", "root ", i, " does not require grad (no input of it does)");
    AutogradMeta* m = meta_of(r);
    if (m->grad_fn && seen.insert(m->grad_fn.get()).second) stack.push_back(m->grad_fn.get());
    if (!m->grad_fn) {
      leaf_deps[m]++;
      leaf_tensor.emplace(m, r);
    }
  }
  while (!stack.empty()) {
    Node* n = stack.back();
    stack.pop_back();
    for (int a : n->argnums) visit_input(n->inputs[size_t(a)]);
  }

  auto deliver_leaf = [&](AutogradMeta* m, Tensor g) {
    accumulate_leaf(m->grad, std::move(g));
    if (--leaf_deps[m] == 0) {
      for (auto& hook : m->grad_ready_hooks) hook(m->grad);
    }
  };

  // Seed the roots.
  auto later_first = [](Node* a, Node* b) { return a->sequence < b->sequence; };
  std::priority_queue<Node*, std::vector<Node*>, decltype(later_first)> ready(later_first);
  for (size_t i = 0; i < roots.size(); ++i) {
    const Tensor& r = roots[i];
    Tensor g = gradients[i];
    if (!g.defined()) {
      SPARTA_CHECK(r.numel() == 1, "backward", "root of shape ", shape_str(r.shape()),
                   " is not a scalar: pass a gradient of that shape");
      g = ones_like(r.detach());
    }
    SPARTA_CHECK(g.shape() == r.shape(), "backward", "gradient of shape ", shape_str(g.shape()),
                 " for a root of shape ", shape_str(r.shape()));
    g = cast(g.detach(), r.dtype());
    AutogradMeta* m = meta_of(r);
    if (!m->grad_fn) {
      deliver_leaf(m, std::move(g));
      continue;
    }
    Pending& p = pending[m->grad_fn.get()];
    p.grads.resize(m->grad_fn->outputs.size());
    accumulate(p.grads[size_t(m->output_nr)], g);
  }
  for (size_t i = 0; i < roots.size(); ++i) {
    Node* n = meta_of(roots[i])->grad_fn.get();
    if (n && pending[n].deps == 0 && !pending[n].grads.empty()) {
      ready.push(n);
      pending[n].deps = -1;  // queued
    }
  }

  while (!ready.empty()) {
    Node* n = ready.top();
    ready.pop();
    Tensors cot = std::move(pending[n].grads);
    pending.erase(n);
    cot.resize(n->outputs.size());
    for (size_t k = 0; k < cot.size(); ++k) {
      if (!cot[k].defined()) cot[k] = zeros_like(n->outputs[k]);
    }
    Tensors grads = n->primitive->vjp(n->primals, cot, n->argnums, n->outputs);
    SPARTA_CHECK(grads.size() == n->argnums.size(), n->primitive->name(), "vjp returned ", grads.size(),
                 " gradients for ", n->argnums.size(), " inputs");
    for (size_t j = 0; j < grads.size(); ++j) {
      const Tensor& input = n->inputs[size_t(n->argnums[j])];
      AutogradMeta* m = meta_of(input);
      Tensor g = grads[j];
      if (g.defined()) {
        SPARTA_CHECK(g.shape() == input.shape(), n->primitive->name(), "vjp gave a gradient of shape ",
                     shape_str(g.shape()), " for an input of shape ", shape_str(input.shape()));
        if (g.dtype() != input.dtype()) g = cast(g, input.dtype());
      }
      if (!m->grad_fn) {
        grads[j] = Tensor();  // g alone holds the gradient now (accumulate_leaf may keep it)
        deliver_leaf(m, g.defined() ? std::move(g) : zeros_like(input.detach()));
        continue;
      }
      Node* prev = m->grad_fn.get();
      Pending& p = pending[prev];
      if (g.defined()) {
        p.grads.resize(prev->outputs.size());
        accumulate(p.grads[size_t(m->output_nr)], g);
      }
      if (--p.deps == 0) {
        p.deps = -1;
        ready.push(prev);
      }
    }
  }

  if (t_backward_depth > 1) return;  // a nested pass: the outermost one runs the callbacks
  auto callbacks = std::move(t_post_backward);
  t_post_backward.clear();
  for (auto& cb : callbacks) cb();
}

}  // namespace sparta::autograd
