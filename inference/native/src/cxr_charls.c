/*
 * cxr_charls: a minimal N-API addon that decodes JPEG-LS (ISO 14495-1, as
 * found in DICOM encapsulated pixel data) with the system CharLS 2.x library,
 * on the libuv thread pool.
 *
 * JS surface (see inference/src/codecs/charls-native.ts for the typed API):
 *   decode(input: Uint8Array, maxPixels: number)
 *     -> Promise<{ width, height, components, bitsPerSample, nearLossless,
 *                  interleaveMode, data }>
 *   charlsVersion: string
 *
 * Design notes
 * - The input bytes are copied into the job before the work is queued, so the
 *   JS buffer may be mutated or collected while the decode runs.
 * - CharLS reads the frame and scan headers first (no allocation proportional
 *   to the image); width * height * components is checked against maxPixels
 *   before the output buffer is allocated or any sample is decoded.
 * - A codestream without its end-of-image marker (FF D9) near the end is
 *   refused before CharLS sees it: CharLS 2.4's bit reader, run past the end
 *   of its buffer, counts zero bits until a 32-bit counter wraps (8 to 11 s
 *   of CPU here), whereas it stops at once at a marker.
 * - Output: samples as CharLS decodes them, interleaved pixel-major;
 *   Uint8Array for bitsPerSample <= 8, else Uint16Array. Planar colour
 *   (interleave mode "none" with more than one component) is refused as
 *   unsupported rather than returned in a different layout.
 * - The output buffer is handed to JS without a copy (external ArrayBuffer,
 *   freed by its finalizer), with a copying fallback where external buffers
 *   are not allowed.
 * - Every error path ends in a rejected promise carrying an Error with a
 *   `code` property:
 *     ERR_JLS_INVALID_INPUT  not a JPEG-LS codestream, or its headers are invalid
 *     ERR_JLS_TRUNCATED      no end-of-image marker: the codestream is cut short
 *     ERR_JLS_TOO_LARGE      width*height*components exceeds maxPixels (the
 *                            error also carries frameWidth, frameHeight and
 *                            frameComponents)
 *     ERR_JLS_UNSUPPORTED    planar colour, more than 4 components
 *     ERR_JLS_DECODE         CharLS failed in the scan data (corrupt or truncated)
 *     ERR_JLS_NO_MEMORY      an allocation failed
 */
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <charls/charls.h>
#include <node_api.h>

#define JLS_MAX_COMPONENTS 4u
#define JLS_MSG_CAP 512
/* 2^53: the largest integer a JS number represents exactly. */
#define JLS_MAX_SAFE_INTEGER 9007199254740992.0

typedef enum {
  JLS_OK = 0,
  JLS_E_INVALID,
  JLS_E_TRUNCATED,
  JLS_E_TOO_LARGE,
  JLS_E_UNSUPPORTED,
  JLS_E_DECODE,
  JLS_E_NOMEM
} jls_status;

typedef struct {
  /* input (owned copy) */
  uint8_t *input;
  size_t input_len;
  uint64_t max_samples;

  /* N-API handles */
  napi_async_work work;
  napi_deferred deferred;

  /* result */
  jls_status status;
  char message[JLS_MSG_CAP];
  void *out;
  size_t out_bytes;
  size_t out_elems;
  napi_typedarray_type out_type;
  uint32_t width;
  uint32_t height;
  uint32_t components;
  uint32_t bits_per_sample;
  int32_t near_lossless;
  int32_t interleave_mode;
} jls_job;

static jls_status fail(jls_job *job, jls_status status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static jls_status fail(jls_job *job, jls_status status, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(job->message, sizeof job->message, fmt, ap);
  va_end(ap);
  job->status = status;
  return status;
}

static const char *status_code(jls_status s) {
  switch (s) {
    case JLS_E_INVALID:
      return "ERR_JLS_INVALID_INPUT";
    case JLS_E_TRUNCATED:
      return "ERR_JLS_TRUNCATED";
    case JLS_E_TOO_LARGE:
      return "ERR_JLS_TOO_LARGE";
    case JLS_E_UNSUPPORTED:
      return "ERR_JLS_UNSUPPORTED";
    case JLS_E_NOMEM:
      return "ERR_JLS_NO_MEMORY";
    case JLS_E_DECODE:
    case JLS_OK:
    default:
      return "ERR_JLS_DECODE";
  }
}

/* A CharLS failure: out of memory is its own code, anything else gets `otherwise`. */
static jls_status fail_charls(jls_job *job, jls_status otherwise, const char *stage,
                              charls_jpegls_errc ec) {
  const char *what = charls_get_error_message(ec);
  return fail(job, ec == CHARLS_JPEGLS_ERRC_NOT_ENOUGH_MEMORY ? JLS_E_NOMEM : otherwise,
              "JPEG-LS %s failed: %s (CharLS error %d)", stage,
              what != NULL ? what : "no details", (int)ec);
}

/* ------------------------------------------------------------------------ */
/* Decode (runs on the libuv thread pool; no N-API calls here)               */
/* ------------------------------------------------------------------------ */

static jls_status decode_with(jls_job *job, charls_jpegls_decoder *decoder) {
  charls_jpegls_errc ec = charls_jpegls_decoder_set_source_buffer(decoder, job->input, job->input_len);
  if (ec != CHARLS_JPEGLS_ERRC_SUCCESS) return fail_charls(job, JLS_E_INVALID, "input", ec);

  charls_spiff_header spiff;
  int32_t spiff_found = 0;
  ec = charls_jpegls_decoder_read_spiff_header(decoder, &spiff, &spiff_found);
  if (ec != CHARLS_JPEGLS_ERRC_SUCCESS) return fail_charls(job, JLS_E_INVALID, "SPIFF header", ec);
  ec = charls_jpegls_decoder_read_header(decoder);
  if (ec != CHARLS_JPEGLS_ERRC_SUCCESS) return fail_charls(job, JLS_E_INVALID, "header", ec);

  charls_frame_info frame;
  ec = charls_jpegls_decoder_get_frame_info(decoder, &frame);
  if (ec != CHARLS_JPEGLS_ERRC_SUCCESS) return fail_charls(job, JLS_E_INVALID, "frame info", ec);
  if (frame.width == 0 || frame.height == 0 || frame.bits_per_sample < 2 ||
      frame.bits_per_sample > 16 || frame.component_count < 1) {
    return fail(job, JLS_E_INVALID, "JPEG-LS frame header is invalid (%ux%u, %d components, %d bits)",
                frame.width, frame.height, frame.component_count, frame.bits_per_sample);
  }
  /* Kept on failure too: a TOO_LARGE error reports them. */
  job->width = frame.width;
  job->height = frame.height;
  job->components = (uint32_t)frame.component_count;
  uint64_t components = (uint64_t)frame.component_count;
  if (components > JLS_MAX_COMPONENTS) {
    return fail(job, JLS_E_UNSUPPORTED, "unsupported JPEG-LS image with %d components (max %u)",
                frame.component_count, JLS_MAX_COMPONENTS);
  }
  /* The limit, before anything proportional to the image is allocated.
   * width, height < 2^32, so width*height < 2^64; components <= 4. */
  uint64_t pixels = (uint64_t)frame.width * frame.height;
  if (pixels > job->max_samples || pixels * components > job->max_samples) {
    return fail(job, JLS_E_TOO_LARGE,
                "JPEG-LS image %ux%u with %d component(s) exceeds maxPixels=%llu "
                "(width*height*components)",
                frame.width, frame.height, frame.component_count,
                (unsigned long long)job->max_samples);
  }

  charls_interleave_mode interleave;
  ec = charls_jpegls_decoder_get_interleave_mode(decoder, &interleave);
  if (ec != CHARLS_JPEGLS_ERRC_SUCCESS) return fail_charls(job, JLS_E_INVALID, "header", ec);
  if (components > 1 && interleave == CHARLS_INTERLEAVE_MODE_NONE) {
    return fail(job, JLS_E_UNSUPPORTED,
                "unsupported planar (non-interleaved) colour JPEG-LS");
  }
  int32_t near_lossless = 0;
  ec = charls_jpegls_decoder_get_near_lossless(decoder, 0, &near_lossless);
  if (ec != CHARLS_JPEGLS_ERRC_SUCCESS) return fail_charls(job, JLS_E_INVALID, "header", ec);

  size_t bytes_per_sample = frame.bits_per_sample > 8 ? 2 : 1;
  if (pixels * components > SIZE_MAX / bytes_per_sample) {
    return fail(job, JLS_E_TOO_LARGE, "decoded image size overflows");
  }
  size_t expected = (size_t)(pixels * components) * bytes_per_sample;
  size_t needed = 0;
  ec = charls_jpegls_decoder_get_destination_size(decoder, 0, &needed);
  if (ec != CHARLS_JPEGLS_ERRC_SUCCESS) return fail_charls(job, JLS_E_INVALID, "header", ec);
  /* Unpadded rows, samples of 1 or 2 bytes: anything else would be misread by the caller. */
  if (needed != expected) {
    return fail(job, JLS_E_UNSUPPORTED,
                "unexpected JPEG-LS output size %zu bytes (expected %zu for %ux%ux%d at %d bits)",
                needed, expected, frame.width, frame.height, frame.component_count,
                frame.bits_per_sample);
  }
  job->out = malloc(needed > 0 ? needed : 1);
  if (job->out == NULL) {
    return fail(job, JLS_E_NOMEM, "cannot allocate %zu bytes for the decoded image", needed);
  }
  ec = charls_jpegls_decoder_decode_to_buffer(decoder, job->out, needed, 0);
  if (ec != CHARLS_JPEGLS_ERRC_SUCCESS) return fail_charls(job, JLS_E_DECODE, "decode", ec);

  job->out_bytes = needed;
  job->out_elems = needed / bytes_per_sample;
  job->out_type = bytes_per_sample == 1 ? napi_uint8_array : napi_uint16_array;
  job->bits_per_sample = (uint32_t)frame.bits_per_sample;
  job->near_lossless = near_lossless;
  job->interleave_mode = (int32_t)interleave;
  return JLS_OK;
}

/* The end-of-image marker FF D9, perhaps followed by a few padding bytes (00 or FF). It cannot occur
 * inside entropy-coded data, where FF is always followed by a byte below 0x80. */
static bool ends_with_eoi(const uint8_t *d, size_t len) {
  size_t lowest = len > 16 ? len - 16 : 0;
  for (size_t i = len - 1; i > lowest; i--) {
    if (d[i - 1] == 0xFF && d[i] == 0xD9) return true;
  }
  return false;
}

static jls_status run_decode(jls_job *job) {
  const uint8_t *d = job->input;
  if (job->input_len < 4 || d[0] != 0xFF || d[1] != 0xD8) {
    return fail(job, JLS_E_INVALID, "not a JPEG-LS codestream (no start-of-image marker FF D8)");
  }
  if (!ends_with_eoi(d, job->input_len)) {
    return fail(job, JLS_E_TRUNCATED, "the JPEG-LS codestream is cut short (no end-of-image marker)");
  }
  charls_jpegls_decoder *decoder = charls_jpegls_decoder_create();
  if (decoder == NULL) return fail(job, JLS_E_NOMEM, "charls_jpegls_decoder_create failed");
  jls_status st = decode_with(job, decoder);
  charls_jpegls_decoder_destroy(decoder);
  if (st != JLS_OK) {
    free(job->out);
    job->out = NULL;
    job->out_bytes = 0;
    job->out_elems = 0;
  }
  return st;
}

static void execute_decode(napi_env env, void *data) {
  (void)env; /* must not be used off the main thread */
  jls_job *job = (jls_job *)data;
  job->status = run_decode(job);
  /* The compressed bytes are no longer needed; release them early. */
  free(job->input);
  job->input = NULL;
}

/* ------------------------------------------------------------------------ */
/* N-API glue (main thread)                                                  */
/* ------------------------------------------------------------------------ */

static void job_free(jls_job *job) {
  if (job == NULL) return;
  free(job->input);
  free(job->out);
  free(job);
}

/* Rejects `deferred` with the pending JS exception if there is one (clearing
 * it so it does not become an uncaught exception), else with a new Error. */
static void reject_with(napi_env env, napi_deferred deferred, const char *code, const char *msg) {
  napi_value reason = NULL;
  bool pending = false;
  if (napi_is_exception_pending(env, &pending) == napi_ok && pending) {
    if (napi_get_and_clear_last_exception(env, &reason) != napi_ok) reason = NULL;
  }
  if (reason == NULL) {
    napi_value jcode, jmsg;
    if (napi_create_string_utf8(env, code, NAPI_AUTO_LENGTH, &jcode) != napi_ok ||
        napi_create_string_utf8(env, msg, NAPI_AUTO_LENGTH, &jmsg) != napi_ok ||
        napi_create_error(env, jcode, jmsg, &reason) != napi_ok) {
      reason = NULL;
    }
  }
  if (reason == NULL && napi_get_undefined(env, &reason) != napi_ok) return;
  napi_reject_deferred(env, deferred, reason);
}

static napi_status set_u32(napi_env env, napi_value obj, const char *key, uint32_t v) {
  napi_value jv;
  napi_status s = napi_create_uint32(env, v, &jv);
  if (s != napi_ok) return s;
  return napi_set_named_property(env, obj, key, jv);
}

static napi_status set_i32(napi_env env, napi_value obj, const char *key, int32_t v) {
  napi_value jv;
  napi_status s = napi_create_int32(env, v, &jv);
  if (s != napi_ok) return s;
  return napi_set_named_property(env, obj, key, jv);
}

static void free_output(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  free(data);
}

/* The decoded samples as an ArrayBuffer: the malloc'd block itself when the
 * runtime allows external buffers (no 7 MB copy for a 2k image), else a copy. */
static napi_status output_buffer(napi_env env, jls_job *job, napi_value *ab) {
  napi_status s = napi_create_external_arraybuffer(env, job->out, job->out_bytes, free_output,
                                                   NULL, ab);
  if (s == napi_ok) {
    job->out = NULL; /* owned by the ArrayBuffer now */
    return napi_ok;
  }
  /* A failed external call may leave an exception pending; the copy does not need it. */
  bool pending = false;
  napi_value ignored;
  if (napi_is_exception_pending(env, &pending) == napi_ok && pending) {
    (void)napi_get_and_clear_last_exception(env, &ignored);
  }
  void *ab_data = NULL;
  if ((s = napi_create_arraybuffer(env, job->out_bytes, &ab_data, ab)) != napi_ok) return s;
  if (job->out_bytes > 0) {
    if (ab_data == NULL) return napi_generic_failure;
    memcpy(ab_data, job->out, job->out_bytes);
  }
  free(job->out);
  job->out = NULL;
  return napi_ok;
}

static napi_status build_result(napi_env env, jls_job *job, napi_value *result) {
  napi_status s;
  napi_value obj, ab, ta;
  if ((s = napi_create_object(env, &obj)) != napi_ok) return s;
  if ((s = output_buffer(env, job, &ab)) != napi_ok) return s;
  if ((s = napi_create_typedarray(env, job->out_type, job->out_elems, ab, 0, &ta)) != napi_ok)
    return s;
  if ((s = set_u32(env, obj, "width", job->width)) != napi_ok) return s;
  if ((s = set_u32(env, obj, "height", job->height)) != napi_ok) return s;
  if ((s = set_u32(env, obj, "components", job->components)) != napi_ok) return s;
  if ((s = set_u32(env, obj, "bitsPerSample", job->bits_per_sample)) != napi_ok) return s;
  if ((s = set_i32(env, obj, "nearLossless", job->near_lossless)) != napi_ok) return s;
  if ((s = set_i32(env, obj, "interleaveMode", job->interleave_mode)) != napi_ok) return s;
  if ((s = napi_set_named_property(env, obj, "data", ta)) != napi_ok) return s;
  *result = obj;
  return napi_ok;
}

/* The frame's size on a TOO_LARGE error, so the caller can tell a hostile size from a mismatch. */
static void reject_too_large(napi_env env, jls_job *job) {
  napi_value jcode, jmsg, error;
  if (napi_create_string_utf8(env, status_code(job->status), NAPI_AUTO_LENGTH, &jcode) != napi_ok ||
      napi_create_string_utf8(env, job->message, NAPI_AUTO_LENGTH, &jmsg) != napi_ok ||
      napi_create_error(env, jcode, jmsg, &error) != napi_ok ||
      set_u32(env, error, "frameWidth", job->width) != napi_ok ||
      set_u32(env, error, "frameHeight", job->height) != napi_ok ||
      set_u32(env, error, "frameComponents", job->components) != napi_ok) {
    reject_with(env, job->deferred, status_code(job->status), job->message);
    return;
  }
  napi_reject_deferred(env, job->deferred, error);
}

static void complete_decode(napi_env env, napi_status status, void *data) {
  jls_job *job = (jls_job *)data;
  if (status != napi_ok) {
    reject_with(env, job->deferred, "ERR_JLS_DECODE", "JPEG-LS decode was cancelled");
  } else if (job->status == JLS_E_TOO_LARGE) {
    reject_too_large(env, job);
  } else if (job->status != JLS_OK) {
    reject_with(env, job->deferred, status_code(job->status), job->message);
  } else {
    napi_value result = NULL;
    if (build_result(env, job, &result) == napi_ok && result != NULL) {
      if (napi_resolve_deferred(env, job->deferred, result) != napi_ok) {
        reject_with(env, job->deferred, "ERR_JLS_DECODE", "cannot resolve the decode promise");
      }
    } else {
      reject_with(env, job->deferred, "ERR_JLS_NO_MEMORY",
                  "cannot create the JavaScript result for the decoded image");
    }
  }
  napi_delete_async_work(env, job->work);
  job_free(job);
}

/* Throws synchronously (the TS wrapper is async, so this becomes a rejection)
 * and frees the partially built job. type_error selects TypeError vs Error. */
#define THROW_IF(cond, type_error, msg)                          \
  do {                                                           \
    if (cond) {                                                  \
      if (type_error) {                                          \
        napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", msg); \
      } else {                                                   \
        napi_throw_error(env, "ERR_JLS_INTERNAL", msg);          \
      }                                                          \
      job_free(job);                                             \
      return NULL;                                               \
    }                                                            \
  } while (0)

/* decode(input: Uint8Array, maxPixels: number): Promise */
static napi_value js_decode(napi_env env, napi_callback_info info) {
  jls_job *job = NULL;
  size_t argc = 2;
  napi_value argv[2];
  THROW_IF(napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok, 0,
           "napi_get_cb_info failed");
  THROW_IF(argc < 2, 1, "decode(input, maxPixels) expects 2 arguments");

  bool is_ta = false;
  THROW_IF(napi_is_typedarray(env, argv[0], &is_ta) != napi_ok || !is_ta, 1,
           "input must be a Uint8Array");
  napi_typedarray_type ta_type;
  size_t ta_len = 0;
  void *ta_data = NULL;
  THROW_IF(napi_get_typedarray_info(env, argv[0], &ta_type, &ta_len, &ta_data, NULL, NULL) !=
               napi_ok,
           0, "napi_get_typedarray_info failed");
  THROW_IF(ta_type != napi_uint8_array, 1, "input must be a Uint8Array");

  napi_valuetype max_type;
  double max_d = 0;
  THROW_IF(napi_typeof(env, argv[1], &max_type) != napi_ok || max_type != napi_number ||
               napi_get_value_double(env, argv[1], &max_d) != napi_ok || !isfinite(max_d) ||
               max_d < 1 || floor(max_d) != max_d,
           1, "maxPixels must be a positive integer");

  job = (jls_job *)calloc(1, sizeof *job);
  THROW_IF(job == NULL, 0, "out of memory");
  job->max_samples = max_d >= JLS_MAX_SAFE_INTEGER ? (uint64_t)JLS_MAX_SAFE_INTEGER : (uint64_t)max_d;

  /* Copy the input: the JS buffer may be mutated or collected meanwhile. An
   * empty input is copied as nothing and rejected by run_decode. */
  job->input_len = ta_len;
  if (ta_len > 0) {
    THROW_IF(ta_data == NULL, 0, "typed array has no backing store");
    job->input = (uint8_t *)malloc(ta_len);
    THROW_IF(job->input == NULL, 0, "out of memory copying the codestream");
    memcpy(job->input, ta_data, ta_len);
  }

  napi_value promise, resource_name;
  THROW_IF(napi_create_string_utf8(env, "cxr_charls.decode", NAPI_AUTO_LENGTH, &resource_name) !=
               napi_ok,
           0, "napi_create_string_utf8 failed");
  THROW_IF(napi_create_promise(env, &job->deferred, &promise) != napi_ok, 0,
           "napi_create_promise failed");
  if (napi_create_async_work(env, NULL, resource_name, execute_decode, complete_decode, job,
                             &job->work) != napi_ok) {
    reject_with(env, job->deferred, "ERR_JLS_INTERNAL", "napi_create_async_work failed");
    job_free(job);
    return promise;
  }
  if (napi_queue_async_work(env, job->work) != napi_ok) {
    napi_delete_async_work(env, job->work);
    reject_with(env, job->deferred, "ERR_JLS_INTERNAL", "napi_queue_async_work failed");
    job_free(job);
    return promise;
  }
  return promise;
}

NAPI_MODULE_INIT(/* napi_env env, napi_value exports */) {
  napi_value fn, version;
  if (napi_create_function(env, "decode", NAPI_AUTO_LENGTH, js_decode, NULL, &fn) != napi_ok ||
      napi_set_named_property(env, exports, "decode", fn) != napi_ok) {
    napi_throw_error(env, NULL, "cxr_charls: cannot export decode");
    return NULL;
  }
  const char *v = charls_get_version_string();
  if (napi_create_string_utf8(env, v != NULL ? v : "unknown", NAPI_AUTO_LENGTH, &version) !=
          napi_ok ||
      napi_set_named_property(env, exports, "charlsVersion", version) != napi_ok) {
    napi_throw_error(env, NULL, "cxr_charls: cannot export charlsVersion");
    return NULL;
  }
  return exports;
}
