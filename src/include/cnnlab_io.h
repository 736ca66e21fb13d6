/* cnnlab_io.h — file formats and data sets of the cnnlab core (included by cnnlab.h).
 *
 * Same conventions as cnnlab.h: NULL or -1 on failure with the reason in cl_last_error()
 * (always naming the file, and the tensor where there is one), new references returned,
 * arguments borrowed. Every writer is atomic: it writes a temporary file in the target's
 * folder, flushes it to disk and renames it over the target, so a crash or a full disk never
 * leaves a half-written file in place of a good one. Formats: docs/data.md. */
#ifndef CNNLAB_IO_H
#define CNNLAB_IO_H

#include <stddef.h>
#include <stdint.h>

/* ---------------------------------------------------------------- IDX (MNIST's format) */

/* Reads an IDX file, raw or gzip-compressed (detected from the content, not the name).
 * Element types: 0x08 u8 → uint8; 0x09 i8, 0x0B i16, 0x0C i32 → int64; 0x0D f32, 0x0E f64
 * → float32. Rank 0..CL_MAX_DIMS. The header, the type, the dimensions and the exact file
 * length are checked: a truncated file or trailing bytes are errors. */
cl_tensor *cl_read_idx(const char *path);
/* Writes uint8 as 0x08, int64 as 0x0C (every value must fit in int32), float32 as 0x0D;
 * gzip != 0 compresses. Any layout of t is accepted. */
int cl_write_idx(const char *path, const cl_tensor *t, int gzip);

/* ---------------------------------------------------------------- PNG */

/* Writes t as an 8-bit PNG: H×W or 1×H×W grey, 3×H×W RGB (channel-first). uint8 values are
 * written as they are; float32 values are clipped to [0,1] and scaled by 255, rounded; NaN
 * becomes 0. */
int cl_write_png(const char *path, const cl_tensor *t);
/* Reads any PNG into a uint8 tensor C×H×W with C = 1 (grey, grey+alpha) or 3 (RGB, RGBA,
 * palette). 16-bit samples are scaled to 8 bits; alpha is composited onto black. */
cl_tensor *cl_read_png(const char *path);
/* The same from a buffer; `name` is used in error messages (fuzzing enters here). */
cl_tensor *cl_decode_png(const void *data, size_t size, const char *name);

/* Tiles images (N×C×H×W, or N×H×W taken as C = 1; uint8 or float32) into one C×H'×W' image
 * of the same dtype: ncol images per row, `pad` pixels of pad_value around and between cells,
 * each image upscaled `scale` times by pixel repetition. Empty trailing cells are pad_value.
 * H' = rows·(H·scale + pad) + pad, W' = ncol'·(W·scale + pad) + pad, ncol' = min(ncol, N). */
cl_tensor *cl_image_grid(const cl_tensor *images, int ncol, int pad, int scale, double pad_value);

/* ---------------------------------------------------------------- safetensors (SPEC §4) */

/* One tensor of a safetensors file. `dtype` is the file's name for it ("F32", "I64", ...);
 * loaded tensors are converted to cnnlab's dtypes: F32/F64/F16/BF16 → float32,
 * U8/BOOL → uint8, I8/I16/I32/I64/U16/U32/U64 → int64. */
typedef struct cl_st_entry {
  char *name;
  char dtype[8];
  int ndim;
  int64_t shape[CL_MAX_DIMS];
  uint64_t begin, end; /* byte offsets into the data section */
  cl_tensor *tensor;   /* NULL when only the header was read */
} cl_st_entry;

typedef struct cl_safetensors {
  int count;
  cl_st_entry *entries; /* in file (data offset) order */
  int nmeta;
  char **meta_keys, **meta_values; /* the string map under "__metadata__" */
} cl_safetensors;

/* Writes tensors (float32 as F32, uint8 as U8, int64 as I64) and optional string metadata
 * (nmeta pairs, may be 0). Names must be non-empty, distinct and not "__metadata__". As the
 * reference implementation does: data ordered by dtype size (largest first) then name, so
 * every tensor is aligned to its element size; header JSON padded with spaces to a multiple
 * of 8. The output depends only on the contents, never on the order of the arguments. */
int cl_save_safetensors(const char *path, int count, const char *const *names,
                        cl_tensor *const *tensors, int nmeta, const char *const *meta_keys,
                        const char *const *meta_values);
/* Reads and validates a file: header length against file size, JSON, known dtypes, shapes
 * against offsets, offsets in bounds and covering the data exactly with no overlap, no
 * duplicate names. with_data == 0 reads only the header (entries' tensors stay NULL). */
cl_safetensors *cl_load_safetensors(const char *path, int with_data);
/* The same from a buffer holding a whole file; `name` is used in error messages. */
cl_safetensors *cl_parse_safetensors(const void *data, size_t size, const char *name,
                                     int with_data);
void cl_safetensors_free(cl_safetensors *st); /* NULL is allowed; releases the tensors */

/* ---------------------------------------------------------------- Colored MNIST (SPEC §2) */

/* PCG32 streams (see docs/data.md for the whole derivation): the split uses stream
 * CL_CMNIST_SPLIT; set s (CL_CMNIST_TRAIN, _VAL, _HARD) draws its colours from stream s and
 * the background noise of its i-th sample from stream (s << 32) | i. */
enum { CL_CMNIST_SPLIT = 1, CL_CMNIST_TRAIN = 2, CL_CMNIST_VAL = 3, CL_CMNIST_HARD = 4 };

/* The palette of SPEC §2, class k → RGB in [0,1]. */
extern const double cl_cmnist_palette[10][3];

/* A permutation of 0..n-1 (int64) drawn with PCG32(seed, CL_CMNIST_SPLIT); its first
 * n·4/5 entries are the training digits, the rest the validation digits. */
cl_tensor *cl_cmnist_split(int64_t n, uint64_t seed);
/* Colour index per sample (int64, labels' length) from labels (int64 or uint8 in 0..9), drawn
 * with PCG32(seed, stream). hard == 0 (easy): k = label with probability rho, else uniform
 * over the nine others; hard != 0: k uniform over all ten (rho ignored). */
cl_tensor *cl_cmnist_colors(const cl_tensor *labels, double rho, int hard, uint64_t seed,
                            uint64_t stream);
/* Coloured images N×3×H×W uint8 from grey digits N×H×W uint8 and colour indices (N, 0..9),
 * background noise u ~ U[0, beta] per pixel (beta in [0,1]), sample i's noise from
 * PCG32(seed, (stream << 32) | i). Parallel over samples, bit-identical for any thread count. */
cl_tensor *cl_cmnist_colorize(const cl_tensor *grey, const cl_tensor *colors, double beta,
                              uint64_t seed, uint64_t stream);
/* Grey version: each pixel's channel mean repeated on the three channels. images is
 * (N×)3×H×W; float32 in gives float32 ((r + g) + b) / 3; uint8 in gives uint8, rounded. */
cl_tensor *cl_to_grey(const cl_tensor *images);
/* A float32 batch (index's length × the rest of images' shape) holding images[index[j]] / 255
 * for uint8 images (float32 images are copied as they are): one pass, no temporaries. */
cl_tensor *cl_gather_batch(const cl_tensor *images, const cl_tensor *index);
/* A synthetic digit-like set for machines without MNIST: n 28×28 uint8 images of
 * seven-segment digits with random position, size, slant and stroke width, and their int64
 * labels (balanced, shuffled). A pure function of (n, seed). Returns 0 or -1. */
int cl_synth_digits(int64_t n, uint64_t seed, cl_tensor **images, cl_tensor **labels);

#endif
