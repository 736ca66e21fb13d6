--- cnnlab.doc_core — the help of the functions and methods written in C (cnnlab.core), one
-- line each: name | signature | summary. The only place that describes them; cnnlab.doc reads
-- it for help(x) and the generated reference of docs/api.md.
return [=[
lab.tensor | lab.tensor(data[, {dtype =, requires_grad =}]) → tensor | A tensor from a number, a nested table or another tensor (copied).
lab.zeros | lab.zeros(shape…[, {dtype =, requires_grad =}]) → tensor | A tensor of zeros; shape as sizes (2, 3) or a table {2, 3}.
lab.ones | lab.ones(shape…[, opts]) → tensor | A tensor of ones (options as lab.zeros).
lab.empty | lab.empty(shape…[, opts]) → tensor | A tensor whose values are not set (options as lab.zeros).
lab.full | lab.full(shape…, value[, opts]) → tensor | A tensor with every element equal to value.
lab.arange | lab.arange(n) or lab.arange(start, stop[, step]) → tensor | A range of numbers; int64 when all arguments are integers.
lab.rand | lab.rand(shape…[, {generator =, dtype =, requires_grad =}]) → tensor | Uniform random numbers in [0, 1).
lab.randn | lab.randn(shape…[, {generator =, ...}]) → tensor | Normal random numbers, mean 0 and deviation 1.
lab.randperm | lab.randperm(n[, {generator =}]) → int64 tensor | A random permutation of 0..n−1.
lab.cat | lab.cat({a, b, ...}[, dim]) → tensor | Concatenation of tensors along dim (default 0).
lab.Generator | lab.Generator(seed[, stream]) → generator | A PCG32 random generator: the same numbers for a seed on every machine.
lab.manual_seed | lab.manual_seed(seed) | Reseeds the default generator.
lab.default_generator | lab.default_generator() → generator | The generator used when no opts.generator is given.
lab.is_tensor | lab.is_tensor(x) → boolean | Whether x is a tensor.
lab.matmul | lab.matmul(a, b) → tensor | Matrix product of two 2-D tensors.
lab.conv2d | lab.conv2d(x, weight[, bias, stride, padding]) → tensor | 2-D convolution of N×C×H×W input with O×C×K×K weights.
lab.linear | lab.linear(x, weight[, bias]) → tensor | x · weightᵀ + bias for N×I input and O×I weights.
lab.max_pool2d | lab.max_pool2d(x, kernel[, stride]) → tensor | 2-D max pooling of N×C×H×W input.
lab.conv2d_relu_pool | lab.conv2d_relu_pool(x, w, b, stride, padding, pool_kernel[, pool_stride]) → tensor | max_pool2d(relu(conv2d(...))) as one op, the same bits forward and backward; nn.Sequential uses it when no hook is on the three modules.
lab.upsample_bilinear | lab.upsample_bilinear(x, height, width) → tensor | Bilinear resize of N×C×H×W maps.
lab.avg_pool2d | lab.avg_pool2d(x, kernel[, stride = kernel[, padding = 0]]) → tensor | 2-D average pooling of N×C×H×W input (padding counted, as PyTorch's default).
lab.adaptive_avg_pool2d | lab.adaptive_avg_pool2d(x, height[, width = height]) → tensor | Average pooling of N×C×H×W input to a given output size (1: global average pooling).
lab.batch_norm | lab.batch_norm(x, running_mean, running_var, weight, bias[, training = false[, momentum = 0.1[, eps = 1e-5]]]) → tensor | Batch normalisation over the channels of N×C[×…] input, in F.batch_norm's order.
lab.dropout | lab.dropout(x, p, training[, generator]) → tensor | Zeroes elements with probability p and scales the rest by 1/(1−p) when training.
lab.cross_entropy | lab.cross_entropy(logits, targets[, {weight =, reduction =}]) → tensor | Cross-entropy loss of N×K logits against int64 class targets.
lab.mse_loss | lab.mse_loss(input, target) → tensor | Mean squared error.
lab.nn.cross_entropy | lab.nn.cross_entropy(logits, targets[, opts]) → tensor | lab.cross_entropy, here for PyTorch's habit (nn.functional).
lab.nn.mse_loss | lab.nn.mse_loss(input, target) → tensor | lab.mse_loss, here for PyTorch's habit.
lab.sgd_step | lab.sgd_step(p, grad, buf, lr, momentum, weight_decay, nesterov) | One SGD update in place (what lab.optim.SGD runs).
lab.adam_step | lab.adam_step(p, grad, m, v, step, lr, beta1, beta2, eps, weight_decay, decoupled) | One Adam update in place (what lab.optim.Adam runs).
lab.no_grad | lab.no_grad(fn, ...) → fn's results | Runs fn with gradient recording off; the mode comes back even when fn raises.
lab.set_grad_enabled | lab.set_grad_enabled(on) → previous | Turns gradient recording on or off.
lab.is_grad_enabled | lab.is_grad_enabled() → boolean | Whether operations record a graph for backward.
lab.read_idx | lab.read_idx(path) → tensor | Reads an IDX file (MNIST's format), raw or .gz.
lab.write_idx | lab.write_idx(path, t[, {gzip = bool}]) | Writes a tensor as an IDX file.
lab.read_png | lab.read_png(path) → uint8 C×H×W | Reads a PNG image.
lab.write_png | lab.write_png(path, t) | Writes a C×H×W (1 or 3 channels) uint8 or [0, 1] float image as PNG.
lab.image_grid | lab.image_grid(images[, {ncol = 8, pad = 2, scale = 1, pad_value = 0}]) → C×H×W | Tiles N images into one picture.
lab.save_safetensors | lab.save_safetensors(path, {name = tensor, ...}[, metadata]) | Writes tensors (and string metadata) as safetensors, atomically.
lab.load_safetensors | lab.load_safetensors(path) → tensors, metadata | Reads a safetensors file.
lab.safetensors_info | lab.safetensors_info(path) → entries, metadata | Names, dtypes, shapes and offsets of a safetensors file, without reading the data.
lab.split_indices | lab.split_indices(n, seed) → train, val | The study's 4/5 and 1/5 split of n positions (int64).
lab.assign_colors | lab.assign_colors(labels, rho, "easy"|"hard", seed, set) → int64 | The colour of each digit (Colored MNIST).
lab.colorize | lab.colorize(grey, colors, beta, seed, set) → uint8 N×3×H×W | Paints grey digits in their colours over a noisy background.
lab.to_grey | lab.to_grey(images) → tensor | Grey version of coloured images (channel mean).
lab.gather_batch | lab.gather_batch(images, index) → float32 | The images at index as a float batch (byte / 255).
lab.synth_digits | lab.synth_digits(n, seed) → images, labels | n generated seven-segment digits (uint8 N×28×28, int64 labels).
lab.cmnist_palette | lab.cmnist_palette | The ten colours of Colored MNIST: palette[k + 1] = {r, g, b}.
lab.set_threads | lab.set_threads(n) | Threads the C kernels use (0: all cores).
lab.get_threads | lab.get_threads() → n | Threads the C kernels use.
lab.gemm_backend | lab.gemm_backend() → name | The matrix-product backend compiled in ("openblas", "portable"), and where big products run when not on it.
lab.memory | lab.memory() → {bytes =, peak =, ...} | Memory the core's tensors use, now and at peak.
lab.now | lab.now() → seconds | Wall-clock seconds from a monotonic clock.
lab.isatty | lab.isatty([fd]) → boolean | Whether file descriptor fd (default 1, stdout) is a terminal.
lab.listdir | lab.listdir(path) → names | The sorted names in a folder; nil and a message when it cannot be read.
lab.file_mtime | lab.file_mtime(path) → seconds | When a file last changed (seconds since the epoch); nil when it cannot be read.
lab.getpid | lab.getpid() → pid | This process's id.
lab.trap_sigint | lab.trap_sigint(on) | Makes Ctrl-C set a flag (lab.sigint_pending) instead of stopping the process.
lab.sigint_pending | lab.sigint_pending() → boolean | Whether Ctrl-C was pressed since the trap was set.
lab.nn.Module | lab.nn.Module | The base class of layers: parameters, children, hooks, train/eval, state_dict.
lab.nn.Linear | lab.nn.Linear(in_features, out_features[, {bias = true, generator =}]) | A fully connected layer: x · weightᵀ + bias.
lab.nn.Conv2d | lab.nn.Conv2d(in_channels, out_channels, kernel[, {stride = 1, padding = 0, bias = true, generator =}]) | A 2-D convolution layer.
lab.nn.ReLU | lab.nn.ReLU() | max(x, 0) as a layer.
lab.nn.MaxPool2d | lab.nn.MaxPool2d(kernel[, stride]) | 2-D max pooling as a layer.
lab.nn.Flatten | lab.nn.Flatten() | Flattens each sample to a vector (N×... → N×D).
lab.nn.Dropout | lab.nn.Dropout(p[, {generator =}]) | Zeroes inputs with probability p while training.
lab.nn.Identity | lab.nn.Identity() | Returns its input (a placeholder layer).
lab.nn.Sequential | lab.nn.Sequential() | Layers run in order; net:add(layer[, name]) appends one.
lab.study.integer | lab.study.integer | A converter for study.list that accepts an integer.
lab.nn.class | lab.nn.class(name, parent) → class | Makes a layer class; calling it builds an instance through class.init(self, ...).
lab.Tensor | lab.Tensor | The tensor method table (t:sum(), t:reshape(...)); add methods to extend every tensor.
lab.core | lab.core | The C module cnnlab.core, whose functions lab also holds.
lab.version | lab.version | cnnlab's version, a string.
Tensor:abs | t:abs() → tensor | Absolute values.
Tensor:add | t:add(other) → tensor | t + other, broadcasting (other a tensor or a number).
Tensor:sub | t:sub(other) → tensor | t − other, broadcasting.
Tensor:mul | t:mul(other) → tensor | t × other elementwise, broadcasting.
Tensor:div | t:div(other) → tensor | t / other elementwise, broadcasting.
Tensor:pow | t:pow(e) → tensor | t to the power e.
Tensor:maximum | t:maximum(other) → tensor | Elementwise maximum.
Tensor:minimum | t:minimum(other) → tensor | Elementwise minimum.
Tensor:eq | t:eq(other) → uint8 tensor | 1 where t == other (no gradient).
Tensor:ne | t:ne(other) → uint8 tensor | 1 where t ~= other.
Tensor:lt | t:lt(other) → uint8 tensor | 1 where t < other.
Tensor:le | t:le(other) → uint8 tensor | 1 where t <= other.
Tensor:gt | t:gt(other) → uint8 tensor | 1 where t > other.
Tensor:ge | t:ge(other) → uint8 tensor | 1 where t >= other.
Tensor:neg | t:neg() → tensor | −t.
Tensor:exp | t:exp() → tensor | Elementwise eˣ.
Tensor:log | t:log() → tensor | Elementwise natural logarithm.
Tensor:relu | t:relu() → tensor | max(t, 0).
Tensor:sigmoid | t:sigmoid() → tensor | 1 / (1 + e⁻ᵗ).
Tensor:tanh | t:tanh() → tensor | Hyperbolic tangent.
Tensor:sign | t:sign() → tensor | −1, 0 or 1 by sign.
Tensor:sqrt | t:sqrt() → tensor | Square root.
Tensor:square | t:square() → tensor | t².
Tensor:clamp | t:clamp(lo, hi) → tensor | Values limited to [lo, hi] (nil: no limit).
Tensor:sum | t:sum([dim[, keepdim]]) → tensor | Sum of all elements, or along dim.
Tensor:mean | t:mean([dim[, keepdim]]) → tensor | Mean of all elements, or along dim.
Tensor:max | t:max([dim]) → max[, argmax] | Largest element, or largest along dim with its positions.
Tensor:min | t:min([dim]) → min[, argmin] | Smallest element, or smallest along dim with its positions.
Tensor:argmax | t:argmax(dim) → int64 tensor | Positions of the largest values along dim (counting from 0).
Tensor:softmax | t:softmax(dim) → tensor | Softmax along dim.
Tensor:log_softmax | t:log_softmax(dim) → tensor | Log-softmax along dim.
Tensor:matmul | t:matmul(other) → tensor | Matrix product.
Tensor:index_select | t:index_select(dim, index) → tensor | The slices of dim at the int64 positions index.
Tensor:gather | t:gather(dim, index) → tensor | Elements picked along dim by an int64 index of t's shape.
Tensor:reshape | t:reshape(size…) → tensor | The same elements in another shape (one size may be −1).
Tensor:view | t:view(size…) → tensor | A view in another shape of a contiguous tensor.
Tensor:flatten | t:flatten([start_dim]) → tensor | Dimensions from start_dim (default 0) merged into one.
Tensor:narrow | t:narrow(dim, start, length) → view | length slices of dim from start.
Tensor:select | t:select(dim, index) → view | The slice at index of dim, that dimension removed.
Tensor:transpose | t:transpose(d0, d1) → view | Dimensions d0 and d1 swapped.
Tensor:permute | t:permute(d…) → view | Dimensions reordered.
Tensor:unsqueeze | t:unsqueeze(dim) → view | A dimension of size 1 inserted at dim.
Tensor:squeeze | t:squeeze([dim]) → view | Dimensions of size 1 removed (or only dim).
Tensor:expand | t:expand(size…) → view | Size-1 dimensions stretched without copying.
Tensor:contiguous | t:contiguous() → tensor | t itself when contiguous, else a contiguous copy.
Tensor:is_contiguous | t:is_contiguous() → boolean | Whether the elements are laid out row-major without gaps.
Tensor:clone | t:clone() → tensor | A copy with its own storage.
Tensor:detach | t:detach() → tensor | The same values, cut from the graph (no gradient flows back).
Tensor:float | t:float() → float32 tensor | Converted to float32.
Tensor:byte | t:byte() → uint8 tensor | Converted to uint8.
Tensor:long | t:long() → int64 tensor | Converted to int64.
Tensor:type | t:type([dtype]) → name or tensor | The element type's name, or t converted to dtype.
Tensor:size | t:size([dim]) → sizes or n | The shape as a table, or the size of dim.
Tensor:dim | t:dim() → n | The number of dimensions.
Tensor:numel | t:numel() → n | The number of elements.
Tensor:get | t:get(i, j, …) → number | The element at a position (counting from 0).
Tensor:set | t:set(i, j, …, value) | Sets the element at a position.
Tensor:item | t:item() → number | The value of a one-element tensor.
Tensor:totable | t:totable() → table | The values as nested Lua tables.
Tensor:fill_ | t:fill_(value) → t | Sets every element to value, in place.
Tensor:zero_ | t:zero_() → t | Sets every element to 0, in place.
Tensor:copy_ | t:copy_(src) → t | Copies src into t, broadcasting and converting.
Tensor:backward | t:backward([grad]) | Back-propagates from t (a scalar, or with grad) into the .grad of the leaves.
Tensor:requires_grad_ | t:requires_grad_([on]) → t | Marks a leaf as needing gradients.
Tensor:retain_grad | t:retain_grad() → t | Keeps .grad on a non-leaf tensor after backward.
Tensor:register_hook | t:register_hook(fn) → handle | fn(grad) runs when t's gradient is computed and may replace it.
Tensor:zero_grad | t:zero_grad() | Drops t's .grad.
Tensor:free | t:free() | Releases t's memory now (later use is an error).
Tensor:is_freed | t:is_freed() → boolean | Whether t:free() was called.
Generator:uniform | g:uniform() → number | A number uniform in [0, 1).
Generator:normal | g:normal() → number | A number from N(0, 1).
Generator:integer | g:integer(n) → integer | An integer uniform in 0..n−1.
Generator:state | g:state() → string | The generator's state as text (for checkpoints).
Generator:set_state | g:set_state(s) → g | Restores a state from g:state().
Generator:seed | g:seed(seed[, stream]) → g | Reseeds the generator.
]=]
