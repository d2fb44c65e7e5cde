/*
 * cxr_resize: the two hot loops of the preprocessing contract's area/bilinear resize (step 6), in C.
 *
 * The taps (which source rows and columns each output pixel averages, and their weights) are computed in
 * TypeScript (inference/src/preprocess/resize.ts) and passed in; this file only runs the loops, in the very same
 * order of floating-point operations as the TypeScript, so both give the same bits. No -ffast-math: the order is
 * the contract.
 *
 * JS surface (typed in inference/src/preprocess/native-resize.ts):
 *   sumAffine(samples, sourceColumns, top, left, first, count, wFirst, wInner, wLast,
 *             yStart, yIndex, yWeight, sums, limit) -> number
 *       samples: Uint8Array | Uint16Array; first, count, yStart, yIndex: Int32Array;
 *       wFirst, wInner, wLast, yWeight, sums: Float64Array (sums is rows x columns, zeroed by the caller).
 *       Returns the bitwise OR of every sample read (the caller checks it against the affine range); stops at the
 *       end of the first output row where that OR exceeds `limit` (the sums are then of no use).
 *   verticalLookup(samples, sourceColumns, top, left, width, lut, lutOffset, yStart, yIndex, yWeight, vertical)
 *       -> boolean
 *       samples: Uint8Array | Uint16Array | Int16Array | Int32Array | Float64Array (Float64Array: no table,
 *       lut must be empty); lut: Float64Array; vertical: Float64Array rows x width (zeroed by the caller).
 *       Returns false, having written part of `vertical`, when a sample falls outside the table.
 *   horizontal(vertical, width, xStart, xIndex, xWeight, result) -> undefined
 *       result: Float64Array rows x columns.
 *
 * Every value is a double from the table to the result: the contract computes steps 1 to 7 in double precision, and
 * a float32 on the way moves values within 1e-6 of a rounding tie of step 7 to its other side.
 *
 * Every index is checked against the arrays' lengths before the loops run: a wrong argument throws a TypeError
 * or RangeError, never reads out of bounds.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <node_api.h>

#define MAX_ARGS 14

typedef struct {
  napi_typedarray_type type;
  void *data;
  size_t length;
} typed_array;

static napi_value throw_error(napi_env env, bool range, const char *message) {
  if (range) napi_throw_range_error(env, "ERR_OUT_OF_RANGE", message);
  else napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", message);
  return NULL;
}

static bool get_typed(napi_env env, napi_value value, typed_array *out) {
  bool is_typed = false;
  if (napi_is_typedarray(env, value, &is_typed) != napi_ok || !is_typed) return false;
  napi_value buffer;
  size_t offset;
  return napi_get_typedarray_info(env, value, &out->type, &out->length, &out->data, &buffer, &offset) == napi_ok;
}

static bool get_typed_of(napi_env env, napi_value value, napi_typedarray_type type, typed_array *out) {
  return get_typed(env, value, out) && out->type == type;
}

/* Sizes and offsets up to 2^31 - 1: products of two of them stay far inside int64_t. */
static bool get_index(napi_env env, napi_value value, int64_t *out) {
  double d;
  if (napi_get_value_double(env, value, &d) != napi_ok) return false;
  if (!(d >= 0 && d <= 2147483647.0) || d != (double)(int64_t)d) return false;
  *out = (int64_t)d;
  return true;
}

static bool get_integer(napi_env env, napi_value value, int64_t *out) {
  double d;
  if (napi_get_value_double(env, value, &d) != napi_ok) return false;
  if (!(d >= -9007199254740991.0 && d <= 9007199254740991.0) || d != (double)(int64_t)d) return false;
  *out = (int64_t)d;
  return true;
}

/*
 * Vertical taps: output row y reads source rows top + yIndex[t], t in yStart[y] .. yStart[y + 1] - 1.
 * Checks that each of those rows, from `left` for `span` samples, lies inside `length` samples.
 */
static bool vertical_taps_fit(const typed_array *ys, const typed_array *yi, const typed_array *yw, size_t rows,
                              int64_t top, int64_t left, int64_t span, int64_t source_columns, size_t length) {
  if (ys->length != rows + 1 || yi->length != yw->length) return false;
  const int32_t *start = ys->data;
  const int32_t *index = yi->data;
  if (start[0] < 0 || (size_t)start[rows] > yi->length) return false;
  for (size_t y = 0; y < rows; y++) {
    if (start[y + 1] < start[y]) return false;
  }
  if (left + span > source_columns) return false;
  for (size_t t = 0; t < (size_t)start[rows]; t++) {
    if (index[t] < 0) return false;
    int64_t row = top + index[t];
    if ((row + 1) * source_columns > (int64_t)length) return false;
  }
  return true;
}

#define SUM_AFFINE_LOOP(T)                                                          \
  do {                                                                              \
    const T *src = (const T *)samples.data;                                         \
    for (size_t y = 0; y < rows; y++) {                                             \
      double *out = sums + y * columns;                                             \
      for (int32_t t = y_start[y]; t < y_start[y + 1]; t++) {                       \
        const double wy = y_weight[t];                                              \
        const T *base = src + (size_t)((top + y_index[t]) * source_columns + left); \
        for (size_t x = 0; x < columns; x++) {                                      \
          const T *s0 = base + first[x];                                            \
          const int32_t n = count[x];                                               \
          const uint32_t v0 = s0[0];                                                \
          seen |= v0;                                                               \
          double acc = v0 * w_first[x];                                             \
          if (n > 1) {                                                              \
            uint64_t inner = 0;                                                     \
            for (int32_t k = 1; k < n - 1; k++) {                                   \
              const uint32_t v = s0[k];                                             \
              inner += v;                                                           \
              seen |= v;                                                            \
            }                                                                       \
            const uint32_t v_last = s0[n - 1];                                      \
            seen |= v_last;                                                         \
            acc += (double)inner * w_inner[x] + v_last * w_last[x];                 \
          }                                                                         \
          out[x] = out[x] + acc * wy;                                               \
        }                                                                           \
      }                                                                             \
      if (seen > limit) break;                                                      \
    }                                                                               \
  } while (0)

static napi_value sum_affine(napi_env env, napi_callback_info info) {
  size_t argc = MAX_ARGS;
  napi_value argv[MAX_ARGS];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc != 14) {
    return throw_error(env, false, "sumAffine takes 14 arguments");
  }
  typed_array samples, first_a, count_a, wf_a, wi_a, wl_a, ys_a, yi_a, yw_a, sums_a;
  int64_t source_columns, top, left, limit64;
  if (!get_typed(env, argv[0], &samples) || (samples.type != napi_uint8_array && samples.type != napi_uint16_array)) {
    return throw_error(env, false, "samples must be a Uint8Array or a Uint16Array");
  }
  if (!get_index(env, argv[1], &source_columns) || !get_index(env, argv[2], &top) || !get_index(env, argv[3], &left)) {
    return throw_error(env, false, "sourceColumns, top and left must be non-negative integers");
  }
  if (!get_typed_of(env, argv[4], napi_int32_array, &first_a) || !get_typed_of(env, argv[5], napi_int32_array, &count_a) ||
      !get_typed_of(env, argv[6], napi_float64_array, &wf_a) || !get_typed_of(env, argv[7], napi_float64_array, &wi_a) ||
      !get_typed_of(env, argv[8], napi_float64_array, &wl_a) || !get_typed_of(env, argv[9], napi_int32_array, &ys_a) ||
      !get_typed_of(env, argv[10], napi_int32_array, &yi_a) || !get_typed_of(env, argv[11], napi_float64_array, &yw_a) ||
      !get_typed_of(env, argv[12], napi_float64_array, &sums_a)) {
    return throw_error(env, false, "sumAffine: wrong typed array kinds");
  }
  if (!get_index(env, argv[13], &limit64)) return throw_error(env, false, "sumAffine: limit must be a non-negative integer");
  const uint32_t limit = limit64 > UINT32_MAX ? UINT32_MAX : (uint32_t)limit64;
  const size_t columns = first_a.length;
  if (columns == 0 || ys_a.length < 2) return throw_error(env, true, "sumAffine: empty output");
  const size_t rows = ys_a.length - 1;
  if (count_a.length != columns || wf_a.length != columns || wi_a.length != columns || wl_a.length != columns ||
      sums_a.length != rows * columns) {
    return throw_error(env, true, "sumAffine: array lengths disagree");
  }
  const int32_t *first = first_a.data;
  const int32_t *count = count_a.data;
  int64_t span = 0;
  for (size_t x = 0; x < columns; x++) {
    if (first[x] < 0 || count[x] < 1) return throw_error(env, true, "sumAffine: bad column taps");
    if ((int64_t)first[x] + count[x] > span) span = (int64_t)first[x] + count[x];
  }
  if (!vertical_taps_fit(&ys_a, &yi_a, &yw_a, rows, top, left, span, source_columns, samples.length)) {
    return throw_error(env, true, "sumAffine: taps reach outside the samples");
  }
  const double *w_first = wf_a.data;
  const double *w_inner = wi_a.data;
  const double *w_last = wl_a.data;
  const int32_t *y_start = ys_a.data;
  const int32_t *y_index = yi_a.data;
  const double *y_weight = yw_a.data;
  double *sums = sums_a.data;
  uint32_t seen = 0;
  if (samples.type == napi_uint8_array) SUM_AFFINE_LOOP(uint8_t);
  else SUM_AFFINE_LOOP(uint16_t);
  napi_value result;
  napi_create_uint32(env, seen, &result);
  return result;
}

#define VERTICAL_LUT_LOOP(T)                                                        \
  do {                                                                              \
    const T *src = (const T *)samples.data;                                         \
    for (size_t y = 0; y < rows; y++) {                                             \
      double *out = vertical + y * (size_t)width;                                   \
      for (int32_t t = y_start[y]; t < y_start[y + 1]; t++) {                       \
        const double w = y_weight[t];                                               \
        const T *base = src + (size_t)((top + y_index[t]) * source_columns + left); \
        for (int64_t x = 0; x < width; x++) {                                       \
          const int64_t at = (int64_t)base[x] + lut_offset;                         \
          if (at < 0 || at >= lut_length) return false;                             \
          out[x] = out[x] + lut[at] * w;                                            \
        }                                                                           \
      }                                                                             \
    }                                                                               \
  } while (0)

static bool vertical_lookup_loops(typed_array samples, int64_t source_columns, int64_t top, int64_t left, int64_t width,
                                  const double *lut, int64_t lut_length, int64_t lut_offset, const int32_t *y_start,
                                  const int32_t *y_index, const double *y_weight, size_t rows, double *vertical) {
  switch (samples.type) {
    case napi_uint8_array:
      VERTICAL_LUT_LOOP(uint8_t);
      break;
    case napi_uint16_array:
      VERTICAL_LUT_LOOP(uint16_t);
      break;
    case napi_int16_array:
      VERTICAL_LUT_LOOP(int16_t);
      break;
    case napi_int32_array:
      VERTICAL_LUT_LOOP(int32_t);
      break;
    case napi_float64_array: {
      const double *src = samples.data;
      for (size_t y = 0; y < rows; y++) {
        double *out = vertical + y * (size_t)width;
        for (int32_t t = y_start[y]; t < y_start[y + 1]; t++) {
          const double w = y_weight[t];
          const double *base = src + (size_t)((top + y_index[t]) * source_columns + left);
          for (int64_t x = 0; x < width; x++) out[x] = out[x] + base[x] * w;
        }
      }
      break;
    }
    default:
      return false;
  }
  return true;
}

static napi_value vertical_lookup(napi_env env, napi_callback_info info) {
  size_t argc = MAX_ARGS;
  napi_value argv[MAX_ARGS];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc != 11) {
    return throw_error(env, false, "verticalLookup takes 11 arguments");
  }
  typed_array samples, lut_a, ys_a, yi_a, yw_a, vertical_a;
  int64_t source_columns, top, left, width, lut_offset;
  if (!get_typed(env, argv[0], &samples) ||
      (samples.type != napi_uint8_array && samples.type != napi_uint16_array && samples.type != napi_int16_array &&
       samples.type != napi_int32_array && samples.type != napi_float64_array)) {
    return throw_error(env, false, "samples must be a Uint8Array, Uint16Array, Int16Array, Int32Array or Float64Array");
  }
  if (!get_index(env, argv[1], &source_columns) || !get_index(env, argv[2], &top) || !get_index(env, argv[3], &left) ||
      !get_index(env, argv[4], &width) || !get_integer(env, argv[6], &lut_offset)) {
    return throw_error(env, false, "sourceColumns, top, left, width and lutOffset must be integers");
  }
  if (!get_typed_of(env, argv[5], napi_float64_array, &lut_a) || !get_typed_of(env, argv[7], napi_int32_array, &ys_a) ||
      !get_typed_of(env, argv[8], napi_int32_array, &yi_a) || !get_typed_of(env, argv[9], napi_float64_array, &yw_a) ||
      !get_typed_of(env, argv[10], napi_float64_array, &vertical_a)) {
    return throw_error(env, false, "verticalLookup: wrong typed array kinds");
  }
  if (ys_a.length < 2 || width < 1) return throw_error(env, true, "verticalLookup: empty output");
  const size_t rows = ys_a.length - 1;
  if (vertical_a.length != rows * (size_t)width) return throw_error(env, true, "verticalLookup: vertical has the wrong length");
  if ((samples.type == napi_float64_array) != (lut_a.length == 0)) {
    return throw_error(env, false, "verticalLookup: a table goes with integer samples, none with Float64Array");
  }
  if (!vertical_taps_fit(&ys_a, &yi_a, &yw_a, rows, top, left, width, source_columns, samples.length)) {
    return throw_error(env, true, "verticalLookup: taps reach outside the samples");
  }
  bool ok = vertical_lookup_loops(samples, source_columns, top, left, width, lut_a.data, (int64_t)lut_a.length, lut_offset,
                                  ys_a.data, yi_a.data, yw_a.data, rows, vertical_a.data);
  napi_value result;
  napi_get_boolean(env, ok, &result);
  return result;
}

static napi_value horizontal(napi_env env, napi_callback_info info) {
  size_t argc = MAX_ARGS;
  napi_value argv[MAX_ARGS];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc != 6) {
    return throw_error(env, false, "horizontal takes 6 arguments");
  }
  typed_array vertical_a, xs_a, xi_a, xw_a, result_a;
  int64_t width;
  if (!get_typed_of(env, argv[0], napi_float64_array, &vertical_a) || !get_index(env, argv[1], &width) ||
      !get_typed_of(env, argv[2], napi_int32_array, &xs_a) || !get_typed_of(env, argv[3], napi_int32_array, &xi_a) ||
      !get_typed_of(env, argv[4], napi_float64_array, &xw_a) || !get_typed_of(env, argv[5], napi_float64_array, &result_a)) {
    return throw_error(env, false, "horizontal: wrong argument kinds");
  }
  if (xs_a.length < 2 || width < 1 || vertical_a.length % (size_t)width != 0) {
    return throw_error(env, true, "horizontal: empty output or ragged rows");
  }
  const size_t columns = xs_a.length - 1;
  const size_t rows = vertical_a.length / (size_t)width;
  if (result_a.length != rows * columns || xi_a.length != xw_a.length) {
    return throw_error(env, true, "horizontal: array lengths disagree");
  }
  const int32_t *x_start = xs_a.data;
  const int32_t *x_index = xi_a.data;
  if (x_start[0] < 0 || (size_t)x_start[columns] > xi_a.length) return throw_error(env, true, "horizontal: bad taps");
  for (size_t x = 0; x < columns; x++) {
    if (x_start[x + 1] < x_start[x]) return throw_error(env, true, "horizontal: bad taps");
  }
  for (size_t t = 0; t < (size_t)x_start[columns]; t++) {
    if (x_index[t] < 0 || x_index[t] >= width) return throw_error(env, true, "horizontal: taps reach outside the rows");
  }
  const double *vertical = vertical_a.data;
  const double *x_weight = xw_a.data;
  double *result = result_a.data;
  for (size_t y = 0; y < rows; y++) {
    const double *row = vertical + y * (size_t)width;
    for (size_t x = 0; x < columns; x++) {
      double acc = 0;
      for (int32_t t = x_start[x]; t < x_start[x + 1]; t++) acc += row[x_index[t]] * x_weight[t];
      result[y * columns + x] = acc;
    }
  }
  return NULL;
}

static napi_value init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      {"sumAffine", NULL, sum_affine, NULL, NULL, NULL, napi_enumerable, NULL},
      {"verticalLookup", NULL, vertical_lookup, NULL, NULL, NULL, napi_enumerable, NULL},
      {"horizontal", NULL, horizontal, NULL, NULL, NULL, napi_enumerable, NULL},
  };
  napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
