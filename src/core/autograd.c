/* autograd.c — define-by-run reverse-mode differentiation.
 *
 * Every differentiable op gives its output a node (grad_fn) that holds strong references to
 * the inputs needing gradients and aliases of whatever the backward rule needs. The graph is
 * therefore a DAG of tensors; cl_backward() counts each tensor's consumers, then walks the
 * tensors in topological order with an explicit stack (no recursion: deep graphs would
 * overflow the C stack), summing gradients in place where it owns them. */
#include "core/tensor_impl.h"

#include <string.h>

static int grad_enabled = 1;
static uint32_t pass_counter;
static void (*hooked_free_listener)(uint64_t id);

int cl_grad_enabled(void) { return grad_enabled; }
void cl_set_grad_enabled(int on) { grad_enabled = on != 0; }

void cl_set_hooked_free_listener(void (*fn)(uint64_t id)) { hooked_free_listener = fn; }

void cl_notify_hooked_free(cl_tensor *t) {
  if (hooked_free_listener)
    hooked_free_listener(t->id);
}

int cl_set_requires_grad(cl_tensor *t, int on) {
  if (t->grad_fn)
    return cl_fail("requires_grad: only leaf tensors can change requires_grad (this one comes "
                   "from %s); use :detach() first",
                   t->grad_fn->op);
  if (on && t->dtype != CL_FLOAT32)
    return cl_fail("requires_grad: only float32 tensors can require grad, got %s",
                   cl_dtype_name(t->dtype));
  t->requires_grad = on != 0;
  return 0;
}

const char *cl_grad_fn_name(const cl_tensor *t) { return t->grad_fn ? t->grad_fn->op : NULL; }

/* ---------------------------------------------------------------- nodes */

/* Drops what the node keeps for backward; afterwards the node only remembers its name. */
static void node_release_graph(cl_node *n) {
  for (int i = 0; i < n->ninputs; i++) {
    cl_release(n->inputs[i]);
    n->inputs[i] = NULL;
  }
  for (int i = 0; i < n->nsaved; i++) {
    cl_release(n->saved[i]);
    n->saved[i] = NULL;
  }
  if (n->ctx) {
    cl_dealloc(n->ctx, n->ctx_bytes);
    n->ctx = NULL;
  }
  n->released = 1;
}

void cl_node_release(cl_node *n) {
  if (!n || --n->refcount > 0)
    return;
  node_release_graph(n); /* cl_release() queues the inputs, so no recursion builds up */
  cl_dealloc(n->inputs, sizeof(cl_tensor *) * (size_t)n->ninputs);
  cl_dealloc(n, sizeof *n);
}

int cl_record(cl_tensor **out, cl_node **node, const char *op, cl_backward_fn backward,
              int ninputs, cl_tensor *const *inputs, int nsaved, cl_tensor *const *saved) {
  if (node)
    *node = NULL;
  if (!*out)
    return -1;
  int needed = 0;
  for (int i = 0; i < ninputs; i++)
    if (inputs[i] && inputs[i]->requires_grad)
      needed = 1;
  if (!grad_enabled || !needed)
    return 0;
  cl_node *n = cl_alloc(sizeof *n);
  if (!n)
    goto fail;
  memset(n, 0, sizeof *n);
  n->refcount = 1;
  n->op = op;
  n->backward = backward;
  n->inputs = cl_alloc(sizeof(cl_tensor *) * (size_t)(ninputs > 0 ? ninputs : 1));
  if (!n->inputs) {
    cl_dealloc(n, sizeof *n);
    goto fail;
  }
  n->ninputs = ninputs;
  for (int i = 0; i < ninputs; i++) {
    n->inputs[i] = inputs[i] && inputs[i]->requires_grad ? inputs[i] : NULL;
    if (n->inputs[i])
      cl_retain(n->inputs[i]);
  }
  for (int i = 0; i < nsaved; i++) {
    /* An alias, not the tensor: saving the output itself would make a reference cycle. */
    n->saved[i] = saved[i] ? cl_detach(saved[i]) : NULL;
    if (saved[i] && !n->saved[i]) {
      n->nsaved = i;
      cl_node_release(n);
      goto fail;
    }
    n->saved_version[i] = saved[i] ? saved[i]->storage->version : 0;
  }
  n->nsaved = nsaved;
  (*out)->grad_fn = n;
  (*out)->requires_grad = 1;
  if (node)
    *node = n;
  return 0;
fail:
  cl_release(*out);
  *out = NULL;
  return -1;
}

/* ---------------------------------------------------------------- gradient arithmetic */

int cl_accumulate(cl_tensor **acc, cl_tensor *src) {
  if (!*acc) {
    cl_retain(src);
    *acc = src;
    return 0;
  }
  cl_tensor *a = *acc;
  if (!cl_same_shape(a, src)) {
    char ba[96], bs[96];
    return cl_fail("backward: gradient of shape %s cannot be added to one of shape %s",
                   cl_shape_str(src, bs, sizeof bs), cl_shape_str(a, ba, sizeof ba));
  }
  int sole = a->refcount == 1 && a->storage->refcount == 1 && cl_is_contiguous(a) &&
             a->dtype == CL_FLOAT32;
  if (sole && cl_is_contiguous(src) && src->dtype == CL_FLOAT32) {
    float *pa = cl_f32(a);
    const float *ps = cl_f32(src);
    int64_t n = cl_numel(a);
    for (int64_t i = 0; i < n; i++)
      pa[i] += ps[i];
    a->storage->version++;
    return 0;
  }
  int was = grad_enabled;
  grad_enabled = 0;
  cl_tensor *sum = cl_binary(CL_ADD, a, src);
  grad_enabled = was;
  if (!sum)
    return -1;
  cl_release(a);
  *acc = sum;
  return 0;
}

cl_tensor *cl_sum_to(cl_tensor *g, int ndim, const int64_t *shape) {
  int lead = g->ndim - ndim;
  if (lead < 0)
    return (void)cl_fail("sum_to: cannot reduce %d dims to %d", g->ndim, ndim), NULL;
  cl_retain(g);
  cl_tensor *cur = g;
  /* Sum away leading dims, then the stretched size-1 dims, keeping them. */
  for (int i = 0; i < lead; i++) {
    cl_tensor *next = cl_sum(cur, 0, 0);
    cl_release(cur);
    if (!next)
      return NULL;
    cur = next;
  }
  for (int d = 0; d < ndim; d++) {
    if (shape[d] == 1 && cur->shape[d] != 1) {
      cl_tensor *next = cl_sum(cur, d, 1);
      cl_release(cur);
      if (!next)
        return NULL;
      cur = next;
    }
  }
  return cur;
}

/* ---------------------------------------------------------------- the engine */

typedef struct {
  cl_tensor **items;
  size_t len, cap;
} tensor_list;

static int list_push(tensor_list *l, cl_tensor *t) {
  if (l->len == l->cap) {
    size_t cap = l->cap ? l->cap * 2 : 64;
    cl_tensor **items = cl_alloc(cap * sizeof *items);
    if (!items)
      return -1;
    if (l->len)
      memcpy(items, l->items, l->len * sizeof *items);
    cl_dealloc(l->items, l->cap * sizeof *items);
    l->items = items;
    l->cap = cap;
  }
  l->items[l->len++] = t;
  return 0;
}

static void list_free(tensor_list *l) { cl_dealloc(l->items, l->cap * sizeof *l->items); }

/* Finds every tensor that root depends on through grad_fns and counts, for each, how many
 * edges point at it from within the graph. */
static int collect(cl_tensor *root, uint32_t pass, tensor_list *seen) {
  tensor_list stack = {0};
  int rc = 0;
  root->bw_pass = pass;
  root->bw_pending = 0;
  root->bw_grad = NULL;
  /* Every tensor seen is held until the pass ends: hooks and graph release may drop others. */
  if (list_push(seen, root))
    rc = -1;
  else
    cl_retain(root);
  if (!rc && list_push(&stack, root))
    rc = -1;
  while (!rc && stack.len) {
    cl_tensor *t = stack.items[--stack.len];
    cl_node *n = t->grad_fn;
    if (!n)
      continue;
    if (n->released) {
      rc = cl_fail("backward: trying to go through the graph a second time (at %s); its "
                   "buffers were freed by the first backward — pass retain_graph = true to "
                   "the first one",
                   n->op);
      break;
    }
    for (int i = 0; i < n->ninputs && !rc; i++) {
      cl_tensor *in = n->inputs[i];
      if (!in)
        continue;
      if (in->bw_pass != pass) {
        in->bw_pass = pass;
        in->bw_pending = 0;
        in->bw_grad = NULL;
        if (list_push(seen, in))
          rc = -1;
        else
          cl_retain(in);
        if (!rc && list_push(&stack, in))
          rc = -1;
      }
      in->bw_pending++;
    }
  }
  list_free(&stack);
  return rc;
}

static int check_saved_versions(const cl_node *n) {
  for (int i = 0; i < n->nsaved; i++)
    if (n->saved[i] && n->saved[i]->storage->version != n->saved_version[i])
      return cl_fail("backward: a tensor that %s saved for its gradient was modified in place "
                     "afterwards; clone it before writing into it",
                     n->op);
  return 0;
}

/* Runs one node's rule and hands each input its share. */
static int propagate(cl_tensor *t, cl_tensor *g, tensor_list *ready) {
  cl_node *n = t->grad_fn;
  int rc = check_saved_versions(n);
  if (rc)
    return rc;
  size_t bytes = sizeof(cl_tensor *) * (size_t)n->ninputs;
  cl_tensor **gin = cl_calloc(bytes ? bytes : 1);
  if (!gin)
    return -1;
  rc = n->backward(n, g, gin);
  for (int i = 0; i < n->ninputs; i++) {
    cl_tensor *in = n->inputs[i];
    if (!in)
      continue;
    if (!rc && gin[i]) {
      if (!cl_same_shape(gin[i], in)) {
        char a[96], b[96];
        rc = cl_fail("backward of %s: gradient for input %d has shape %s, input is %s", n->op,
                     i, cl_shape_str(gin[i], a, sizeof a), cl_shape_str(in, b, sizeof b));
      } else {
        rc = cl_accumulate(&in->bw_grad, gin[i]);
      }
    }
    if (!rc && --in->bw_pending == 0 && list_push(ready, in))
      rc = -1;
  }
  for (int i = 0; i < n->ninputs; i++)
    cl_release(gin[i]);
  cl_dealloc(gin, bytes ? bytes : 1);
  return rc;
}

int cl_backward(cl_tensor *root, cl_tensor *grad, int retain_graph, cl_grad_hook_fn hook,
                void *hook_ud) {
  char b1[96], b2[96];
  if (!root->requires_grad)
    return cl_fail("backward: the tensor does not require grad (no input of the computation had "
                   "requires_grad = true, or it ran under no_grad)");
  if (!grad && cl_numel(root) != 1)
    return cl_fail("backward: a gradient must be given for a non-scalar tensor of shape %s",
                   cl_shape_str(root, b1, sizeof b1));
  if (grad && !cl_same_shape(grad, root))
    return cl_fail("backward: gradient of shape %s given for a tensor of shape %s",
                   cl_shape_str(grad, b1, sizeof b1), cl_shape_str(root, b2, sizeof b2));
  cl_tensor *seed = grad ? cl_float_contiguous(grad) : cl_full(CL_FLOAT32, root->ndim, root->shape, 1);
  if (!seed)
    return -1;
  if (seed == grad) { /* never accumulate into the caller's tensor */
    cl_release(seed);
    seed = cl_clone(grad);
    if (!seed)
      return -1;
  }

  tensor_list seen = {0}, ready = {0};
  uint32_t pass = ++pass_counter;
  int was = grad_enabled;
  grad_enabled = 0; /* gradients of gradients are not supported: keep the graph out of them */
  int rc = collect(root, pass, &seen);
  if (!rc) {
    root->bw_grad = seed;
    seed = NULL;
    rc = list_push(&ready, root);
  }
  while (!rc && ready.len) {
    cl_tensor *t = ready.items[--ready.len];
    cl_tensor *g = t->bw_grad;
    t->bw_grad = NULL;
    if (g && t->has_hooks && hook) {
      rc = hook(hook_ud, t, &g);
      if (!rc && g && (!cl_same_shape(g, t) || g->dtype != CL_FLOAT32 || !cl_is_contiguous(g))) {
        char a[96], b[96];
        if (!cl_same_shape(g, t)) {
          rc = cl_fail("backward: a hook returned a gradient of shape %s for a tensor of shape %s",
                       cl_shape_str(g, a, sizeof a), cl_shape_str(t, b, sizeof b));
        } else {
          cl_tensor *c = cl_float_contiguous(g);
          cl_release(g);
          g = c;
          rc = c ? 0 : -1;
        }
      }
    }
    if (!rc && g && ((!t->grad_fn && t->requires_grad) || t->retains_grad)) {
      if (!t->grad && g->storage->refcount > 1) {
        /* g may alias a buffer that later in-place accumulation would modify */
        t->grad = cl_clone(g);
        if (!t->grad)
          rc = -1;
      } else {
        rc = cl_accumulate(&t->grad, g);
      }
    }
    if (!rc && t->grad_fn) {
      if (g) {
        rc = propagate(t, g, &ready);
      } else { /* nothing flows through here, but consumers still count down */
        for (int i = 0; i < t->grad_fn->ninputs && !rc; i++) {
          cl_tensor *in = t->grad_fn->inputs[i];
          if (in && --in->bw_pending == 0)
            rc = list_push(&ready, in);
        }
      }
    }
    cl_release(g);
  }
  grad_enabled = was;
  cl_release(seed);
  for (size_t i = 0; i < seen.len; i++) {
    cl_tensor *t = seen.items[i];
    cl_release(t->bw_grad);
    t->bw_grad = NULL;
  }
  if (!rc && !retain_graph)
    for (size_t i = 0; i < seen.len; i++)
      if (seen.items[i]->grad_fn)
        node_release_graph(seen.items[i]->grad_fn);
  for (size_t i = 0; i < seen.len; i++)
    cl_release(seen.items[i]);
  list_free(&seen);
  list_free(&ready);
  return rc;
}
