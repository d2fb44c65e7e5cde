/*
 * cxr_openjpeg: a minimal N-API addon that decodes JPEG 2000 (raw J2K
 * codestreams as found in DICOM encapsulated pixel data, or JP2 files) with
 * the system OpenJPEG 2.5 library, on the libuv thread pool.
 *
 * JS surface (see inference/src/codecs/openjpeg-native.ts for the typed API):
 *   decode(input: Uint8Array, threads: number, maxPixels: number)
 *     -> Promise<{ width, height, components, precision, signed, data }>
 *   openjpegVersion: string
 *   threadSupport: boolean
 *
 * Design notes
 * - The input bytes are copied into the job before the work is queued, so the
 *   JS buffer may be mutated or collected while the decode runs.
 * - The main header is parsed here (SIZ marker, and for JP2 the box
 *   structure) BEFORE OpenJPEG sees the data, so oversized images
 *   (width * height * components > maxPixels), too many tiles, too many
 *   components and subsampled components are refused without OpenJPEG
 *   allocating anything proportional to them. The same limits are checked
 *   again on OpenJPEG's own parsed header.
 * - Strict mode is on: truncated codestreams are errors, not partial images.
 * - Samples are returned exactly as OpenJPEG decodes them (no clamping, no
 *   DICOM logic), interleaved pixel-major. A sample outside the range implied
 *   by the component precision (which OpenJPEG itself never produces) is an
 *   error rather than being wrapped into the output container.
 * - Every error path ends in a rejected promise carrying an Error with a
 *   `code` property:
 *     ERR_J2K_INVALID_INPUT  not J2K/JP2, malformed SIZ or box structure
 *     ERR_J2K_TOO_LARGE      width*height*components exceeds maxPixels
 *     ERR_J2K_UNSUPPORTED    subsampling, >4 components, >4096 tiles,
 *                            JP2 palette, mixed component precision
 *     ERR_J2K_DECODE         OpenJPEG failed (message includes its errors)
 *     ERR_J2K_NO_MEMORY      an allocation failed
 */
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <node_api.h>
#include <openjpeg.h>
#include <uv.h>

#define CXR_MAX_THREADS 16
#define CXR_MAX_COMPONENTS 4u
#define CXR_MAX_TILES 4096u
#define CXR_MSG_CAP 1024
/* 2^53: the largest integer a JS number represents exactly. */
#define CXR_MAX_SAFE_INTEGER 9007199254740992.0

typedef enum {
  CXR_OK = 0,
  CXR_E_INVALID,
  CXR_E_TOO_LARGE,
  CXR_E_UNSUPPORTED,
  CXR_E_DECODE,
  CXR_E_NOMEM
} cxr_status;

typedef struct {
  const uint8_t *data;
  size_t len;
  size_t pos;
} cxr_memstream;

typedef struct {
  /* input (owned copy) */
  uint8_t *input;
  size_t input_len;
  int threads;
  uint64_t max_samples;

  /* N-API handles */
  napi_async_work work;
  napi_deferred deferred;

  /* OpenJPEG error messages, appended by the error callback */
  uv_mutex_t opj_msg_mutex;
  bool opj_msg_mutex_ok;
  char opj_msg[CXR_MSG_CAP];
  size_t opj_msg_len;

  /* result */
  cxr_status status;
  char message[CXR_MSG_CAP];
  void *out;
  size_t out_bytes;
  size_t out_elems;
  napi_typedarray_type out_type;
  uint32_t width;
  uint32_t height;
  uint32_t components;
  uint32_t precision;
  bool is_signed;
} cxr_job;

/* ------------------------------------------------------------------------ */
/* small helpers                                                             */
/* ------------------------------------------------------------------------ */

static uint16_t rd_be16(const uint8_t *p) {
  return (uint16_t)(((unsigned)p[0] << 8) | (unsigned)p[1]);
}

static uint32_t rd_be32(const uint8_t *p) {
  return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) |
         (uint32_t)p[3];
}

static uint64_t rd_be64(const uint8_t *p) {
  return ((uint64_t)rd_be32(p) << 32) | (uint64_t)rd_be32(p + 4);
}

static cxr_status fail(cxr_job *job, cxr_status status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static cxr_status fail(cxr_job *job, cxr_status status, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(job->message, sizeof job->message, fmt, ap);
  va_end(ap);
  job->status = status;
  return status;
}

static const char *status_code(cxr_status s) {
  switch (s) {
    case CXR_E_INVALID:
      return "ERR_J2K_INVALID_INPUT";
    case CXR_E_TOO_LARGE:
      return "ERR_J2K_TOO_LARGE";
    case CXR_E_UNSUPPORTED:
      return "ERR_J2K_UNSUPPORTED";
    case CXR_E_NOMEM:
      return "ERR_J2K_NO_MEMORY";
    case CXR_E_DECODE:
    case CXR_OK:
    default:
      return "ERR_J2K_DECODE";
  }
}

/* ------------------------------------------------------------------------ */
/* OpenJPEG callbacks                                                        */
/* ------------------------------------------------------------------------ */

static void opj_error_cb(const char *msg, void *client_data) {
  cxr_job *job = (cxr_job *)client_data;
  if (job == NULL || msg == NULL) return;
  if (job->opj_msg_mutex_ok) uv_mutex_lock(&job->opj_msg_mutex);
  size_t n = strlen(msg);
  while (n > 0 && (msg[n - 1] == '\n' || msg[n - 1] == '\r' || msg[n - 1] == ' ')) n--;
  if (n > 0) {
    size_t room = sizeof job->opj_msg - 1 - job->opj_msg_len;
    if (job->opj_msg_len > 0 && room >= 2) {
      job->opj_msg[job->opj_msg_len++] = ';';
      job->opj_msg[job->opj_msg_len++] = ' ';
      room -= 2;
    }
    if (n > room) n = room;
    memcpy(job->opj_msg + job->opj_msg_len, msg, n);
    job->opj_msg_len += n;
    job->opj_msg[job->opj_msg_len] = '\0';
  }
  if (job->opj_msg_mutex_ok) uv_mutex_unlock(&job->opj_msg_mutex);
}

static OPJ_SIZE_T mem_read(void *buffer, OPJ_SIZE_T nbytes, void *user) {
  cxr_memstream *s = (cxr_memstream *)user;
  if (s->pos >= s->len) return (OPJ_SIZE_T)-1;
  size_t avail = s->len - s->pos;
  size_t n = nbytes < avail ? nbytes : avail;
  memcpy(buffer, s->data + s->pos, n);
  s->pos += n;
  return n;
}

static OPJ_OFF_T mem_skip(OPJ_OFF_T nbytes, void *user) {
  cxr_memstream *s = (cxr_memstream *)user;
  if (nbytes > 0) {
    size_t avail = s->len - s->pos;
    if (avail == 0) return (OPJ_OFF_T)-1;
    size_t n = (uint64_t)nbytes < (uint64_t)avail ? (size_t)nbytes : avail;
    s->pos += n;
    return (OPJ_OFF_T)n;
  }
  if (nbytes < 0) {
    uint64_t back = (uint64_t)(-(nbytes + 1)) + 1u; /* |nbytes| without overflow */
    if (back > (uint64_t)s->pos) return (OPJ_OFF_T)-1;
    s->pos -= (size_t)back;
    return nbytes;
  }
  return 0;
}

static OPJ_BOOL mem_seek(OPJ_OFF_T pos, void *user) {
  cxr_memstream *s = (cxr_memstream *)user;
  if (pos < 0 || (uint64_t)pos > (uint64_t)s->len) return OPJ_FALSE;
  s->pos = (size_t)pos;
  return OPJ_TRUE;
}

/* ------------------------------------------------------------------------ */
/* Header pre-check (runs before OpenJPEG touches the data)                  */
/* ------------------------------------------------------------------------ */

/* Checks width*height*components against the limit. */
static cxr_status check_pixel_limit(cxr_job *job, uint64_t w, uint64_t h, uint64_t nc) {
  /* w, h < 2^32 so w*h < 2^64; nc <= CXR_MAX_COMPONENTS was checked first. */
  uint64_t pixels = w * h;
  if (pixels > job->max_samples || pixels * nc > job->max_samples) {
    return fail(job, CXR_E_TOO_LARGE,
                "JPEG 2000 image %llux%llu with %llu component(s) exceeds maxPixels=%llu "
                "(width*height*components)",
                (unsigned long long)w, (unsigned long long)h, (unsigned long long)nc,
                (unsigned long long)job->max_samples);
  }
  return CXR_OK;
}

/* cs points at SOC (FF 4F) followed by SIZ (FF 51). */
static cxr_status precheck_codestream(cxr_job *job, const uint8_t *cs, size_t len) {
  if (len < 4 || cs[0] != 0xFF || cs[1] != 0x4F || cs[2] != 0xFF || cs[3] != 0x51) {
    return fail(job, CXR_E_INVALID, "JPEG 2000 codestream must start with SOC+SIZ (FF 4F FF 51)");
  }
  if (len < 6) return fail(job, CXR_E_INVALID, "JPEG 2000 codestream truncated in SIZ marker");
  const uint8_t *p = cs + 4; /* Lsiz */
  uint32_t lsiz = rd_be16(p);
  if (lsiz < 41 || (size_t)lsiz > len - 4) {
    return fail(job, CXR_E_INVALID, "JPEG 2000 SIZ marker truncated or with invalid length %u",
                lsiz);
  }
  uint32_t xsiz = rd_be32(p + 4), ysiz = rd_be32(p + 8);
  uint32_t xo = rd_be32(p + 12), yo = rd_be32(p + 16);
  uint32_t xt = rd_be32(p + 20), yt = rd_be32(p + 24);
  uint32_t xto = rd_be32(p + 28), yto = rd_be32(p + 32);
  uint32_t csiz = rd_be16(p + 36);
  if (csiz == 0 || lsiz != 38u + 3u * csiz) {
    return fail(job, CXR_E_INVALID, "JPEG 2000 SIZ marker: Lsiz %u inconsistent with Csiz %u",
                lsiz, csiz);
  }
  if (xsiz <= xo || ysiz <= yo) {
    return fail(job, CXR_E_INVALID, "JPEG 2000 SIZ marker: empty image area");
  }
  if (xt == 0 || yt == 0 || xto > xo || yto > yo || (uint64_t)xto + xt <= xo ||
      (uint64_t)yto + yt <= yo) {
    return fail(job, CXR_E_INVALID, "JPEG 2000 SIZ marker: invalid tile grid");
  }
  if (csiz > CXR_MAX_COMPONENTS) {
    return fail(job, CXR_E_UNSUPPORTED, "unsupported JPEG 2000 image with %u components (max %u)",
                csiz, CXR_MAX_COMPONENTS);
  }
  for (uint32_t i = 0; i < csiz; i++) {
    const uint8_t *c = p + 38 + 3 * i;
    if (c[1] != 1 || c[2] != 1) {
      return fail(job, CXR_E_UNSUPPORTED, "unsupported subsampled components");
    }
  }
  uint64_t w = (uint64_t)xsiz - xo, h = (uint64_t)ysiz - yo;
  cxr_status st = check_pixel_limit(job, w, h, csiz);
  if (st != CXR_OK) return st;
  uint64_t tiles_x = ((uint64_t)xsiz - xto + xt - 1) / xt;
  uint64_t tiles_y = ((uint64_t)ysiz - yto + yt - 1) / yt;
  if (tiles_x * tiles_y > CXR_MAX_TILES) {
    return fail(job, CXR_E_UNSUPPORTED, "unsupported JPEG 2000 tiling: %llu tiles (max %u)",
                (unsigned long long)(tiles_x * tiles_y), CXR_MAX_TILES);
  }
  return CXR_OK;
}

static const uint8_t JP2_SIGNATURE[12] = {0x00, 0x00, 0x00, 0x0C, 0x6A, 0x50,
                                          0x20, 0x20, 0x0D, 0x0A, 0x87, 0x0A};

typedef struct {
  uint32_t type;
  size_t payload; /* offset of the payload */
  size_t end;     /* offset one past the box */
} jp2_box;

/* Reads the box header at `off` (within [off, limit)). */
static bool jp2_read_box(const uint8_t *d, size_t off, size_t limit, jp2_box *box) {
  if (limit < off || limit - off < 8) return false;
  uint64_t lbox = rd_be32(d + off);
  uint32_t tbox = rd_be32(d + off + 4);
  size_t hdr = 8;
  if (lbox == 1) {
    if (limit - off < 16) return false;
    lbox = rd_be64(d + off + 8);
    hdr = 16;
    if (lbox < 16) return false;
  } else if (lbox == 0) {
    lbox = (uint64_t)(limit - off);
  } else if (lbox < 8) {
    return false;
  }
  if (lbox > (uint64_t)(limit - off)) return false;
  box->type = tbox;
  box->payload = off + hdr;
  box->end = off + (size_t)lbox;
  return true;
}

#define BOX(a, b, c, d) \
  (((uint32_t)(a) << 24) | ((uint32_t)(b) << 16) | ((uint32_t)(c) << 8) | (uint32_t)(d))

static cxr_status precheck_jp2(cxr_job *job, const uint8_t *d, size_t len) {
  size_t off = 0;
  bool have_jp2h = false;
  while (off < len) {
    jp2_box box;
    if (!jp2_read_box(d, off, len, &box)) {
      return fail(job, CXR_E_INVALID, "malformed or truncated JP2 box at offset %zu", off);
    }
    if (box.type == BOX('j', 'p', '2', 'h')) {
      have_jp2h = true;
      size_t sub = box.payload;
      while (sub < box.end) {
        jp2_box child;
        if (!jp2_read_box(d, sub, box.end, &child)) {
          return fail(job, CXR_E_INVALID, "malformed JP2 header box at offset %zu", sub);
        }
        if (child.type == BOX('p', 'c', 'l', 'r')) {
          return fail(job, CXR_E_UNSUPPORTED, "unsupported JP2 palette (pclr) box");
        }
        sub = child.end;
      }
    } else if (box.type == BOX('j', 'p', '2', 'c')) {
      if (!have_jp2h) {
        return fail(job, CXR_E_INVALID, "JP2 file has a codestream box before its header box");
      }
      return precheck_codestream(job, d + box.payload, box.end - box.payload);
    }
    off = box.end;
  }
  return fail(job, CXR_E_INVALID, "JP2 file has no contiguous codestream (jp2c) box");
}

/* ------------------------------------------------------------------------ */
/* Decode (runs on the libuv thread pool; no N-API calls here)               */
/* ------------------------------------------------------------------------ */

#define CONVERT_LOOP(T)                                                              \
  do {                                                                               \
    T *out = (T *)job->out;                                                          \
    for (uint32_t c = 0; c < nc; c++) {                                              \
      const OPJ_INT32 *src = image->comps[c].data;                                   \
      T *dst = out + c;                                                              \
      for (size_t i = 0; i < npix; i++, dst += nc) {                                 \
        OPJ_INT32 v = src[i];                                                        \
        if ((int64_t)v < lo || (int64_t)v > hi) {                                    \
          return fail(job, CXR_E_DECODE,                                             \
                      "decoded sample %ld of component %u is outside the %u-bit %s " \
                      "range",                                                       \
                      (long)v, c, prec, sgnd ? "signed" : "unsigned");               \
        }                                                                            \
        *dst = (T)v;                                                                 \
      }                                                                              \
    }                                                                                \
  } while (0)

static cxr_status convert_image(cxr_job *job, const opj_image_t *image) {
  uint32_t nc = image->numcomps;
  if (nc == 0 || nc > CXR_MAX_COMPONENTS || image->comps == NULL) {
    return fail(job, CXR_E_UNSUPPORTED, "unsupported decoded component count %u", nc);
  }
  const opj_image_comp_t *c0 = &image->comps[0];
  uint32_t prec = c0->prec;
  bool sgnd = c0->sgnd != 0;
  for (uint32_t c = 0; c < nc; c++) {
    const opj_image_comp_t *ci = &image->comps[c];
    if (ci->dx != 1 || ci->dy != 1 || ci->w != c0->w || ci->h != c0->h) {
      return fail(job, CXR_E_UNSUPPORTED, "unsupported subsampled components");
    }
    if (ci->prec != prec || (ci->sgnd != 0) != sgnd) {
      return fail(job, CXR_E_UNSUPPORTED,
                  "unsupported JPEG 2000 image: components differ in precision or signedness");
    }
    if (ci->data == NULL) {
      return fail(job, CXR_E_DECODE, "OpenJPEG returned no data for component %u", c);
    }
  }
  if (prec < 1 || prec > 31) {
    return fail(job, CXR_E_UNSUPPORTED, "unsupported JPEG 2000 precision %u", prec);
  }
  if (c0->w == 0 || c0->h == 0 || image->x1 <= image->x0 || image->y1 <= image->y0 ||
      c0->w != image->x1 - image->x0 || c0->h != image->y1 - image->y0) {
    return fail(job, CXR_E_DECODE, "decoded component size %ux%u does not match the image area",
                c0->w, c0->h);
  }
  cxr_status st = check_pixel_limit(job, c0->w, c0->h, nc);
  if (st != CXR_OK) return st;

  size_t bps;
  if (prec <= 8 && !sgnd) {
    bps = 1;
    job->out_type = napi_uint8_array;
  } else if (prec <= 16) {
    bps = 2;
    job->out_type = sgnd ? napi_int16_array : napi_uint16_array;
  } else {
    bps = 4;
    job->out_type = napi_int32_array;
  }
  size_t npix = (size_t)c0->w * (size_t)c0->h;
  if (npix / c0->w != c0->h || npix > SIZE_MAX / nc / bps) {
    return fail(job, CXR_E_TOO_LARGE, "decoded image size overflows");
  }
  job->out_elems = npix * nc;
  job->out_bytes = job->out_elems * bps;
  job->out = malloc(job->out_bytes);
  if (job->out == NULL) {
    return fail(job, CXR_E_NOMEM, "cannot allocate %zu bytes for the decoded image",
                job->out_bytes);
  }
  int64_t lo = sgnd ? -((int64_t)1 << (prec - 1)) : 0;
  int64_t hi = sgnd ? ((int64_t)1 << (prec - 1)) - 1 : ((int64_t)1 << prec) - 1;
  switch (job->out_type) {
    case napi_uint8_array:
      CONVERT_LOOP(uint8_t);
      break;
    case napi_int16_array:
      CONVERT_LOOP(int16_t);
      break;
    case napi_uint16_array:
      CONVERT_LOOP(uint16_t);
      break;
    default:
      CONVERT_LOOP(int32_t);
      break;
  }
  job->width = c0->w;
  job->height = c0->h;
  job->components = nc;
  job->precision = prec;
  job->is_signed = sgnd;
  return CXR_OK;
}

static const char *opj_messages(cxr_job *job) {
  return job->opj_msg_len > 0 ? job->opj_msg : "no details from OpenJPEG";
}

static cxr_status run_decode(cxr_job *job) {
  const uint8_t *d = job->input;
  size_t len = job->input_len;
  bool is_jp2;
  cxr_status st;
  if (len >= 4 && d[0] == 0xFF && d[1] == 0x4F && d[2] == 0xFF && d[3] == 0x51) {
    is_jp2 = false;
    st = precheck_codestream(job, d, len);
  } else if (len >= sizeof JP2_SIGNATURE && memcmp(d, JP2_SIGNATURE, sizeof JP2_SIGNATURE) == 0) {
    is_jp2 = true;
    st = precheck_jp2(job, d, len);
  } else {
    return fail(job, CXR_E_INVALID,
                "not a JPEG 2000 codestream (FF 4F FF 51) or JP2 file (jP signature box)");
  }
  if (st != CXR_OK) return st;

  opj_codec_t *codec = NULL;
  opj_stream_t *stream = NULL;
  opj_image_t *image = NULL;
  cxr_memstream ms = {d, len, 0};

  codec = opj_create_decompress(is_jp2 ? OPJ_CODEC_JP2 : OPJ_CODEC_J2K);
  if (codec == NULL) {
    st = fail(job, CXR_E_NOMEM, "opj_create_decompress failed");
    goto done;
  }
  opj_set_error_handler(codec, opj_error_cb, job);

  opj_dparameters_t params;
  opj_set_default_decoder_parameters(&params);
  if (!opj_setup_decoder(codec, &params)) {
    st = fail(job, CXR_E_DECODE, "opj_setup_decoder failed: %s", opj_messages(job));
    goto done;
  }
  if (!opj_decoder_set_strict_mode(codec, OPJ_TRUE)) {
    st = fail(job, CXR_E_DECODE, "opj_decoder_set_strict_mode failed: %s", opj_messages(job));
    goto done;
  }
  /* threads == 1: no worker threads at all, decode on this libuv thread (this
   * also overrides any OPJ_NUM_THREADS environment variable). Failure (a
   * build without thread support) leaves OpenJPEG single-threaded, which
   * decodes identically, so it is not an error. */
  if (opj_has_thread_support()) {
    (void)opj_codec_set_threads(codec, job->threads > 1 ? job->threads : 0);
  }

  stream = opj_stream_create(len < OPJ_J2K_STREAM_CHUNK_SIZE ? len : OPJ_J2K_STREAM_CHUNK_SIZE,
                             OPJ_TRUE);
  if (stream == NULL) {
    st = fail(job, CXR_E_NOMEM, "opj_stream_create failed");
    goto done;
  }
  opj_stream_set_user_data(stream, &ms, NULL);
  opj_stream_set_user_data_length(stream, (OPJ_UINT64)len);
  opj_stream_set_read_function(stream, mem_read);
  opj_stream_set_skip_function(stream, mem_skip);
  opj_stream_set_seek_function(stream, mem_seek);

  if (!opj_read_header(stream, codec, &image) || image == NULL) {
    st = fail(job, CXR_E_DECODE, "cannot read JPEG 2000 header: %s", opj_messages(job));
    goto done;
  }
  /* Same limits on OpenJPEG's view of the header (defence in depth). */
  if (image->numcomps == 0 || image->numcomps > CXR_MAX_COMPONENTS || image->comps == NULL) {
    st = fail(job, CXR_E_UNSUPPORTED, "unsupported JPEG 2000 image with %u components",
              image->numcomps);
    goto done;
  }
  if (image->x1 <= image->x0 || image->y1 <= image->y0) {
    st = fail(job, CXR_E_INVALID, "JPEG 2000 header has an empty image area");
    goto done;
  }
  for (uint32_t c = 0; c < image->numcomps; c++) {
    if (image->comps[c].dx != 1 || image->comps[c].dy != 1) {
      st = fail(job, CXR_E_UNSUPPORTED, "unsupported subsampled components");
      goto done;
    }
  }
  st = check_pixel_limit(job, (uint64_t)image->x1 - image->x0, (uint64_t)image->y1 - image->y0,
                         image->numcomps);
  if (st != CXR_OK) goto done;

  if (!opj_decode(codec, stream, image)) {
    st = fail(job, CXR_E_DECODE, "JPEG 2000 decode failed: %s", opj_messages(job));
    goto done;
  }
  if (!opj_end_decompress(codec, stream)) {
    st = fail(job, CXR_E_DECODE, "JPEG 2000 decode failed at end of codestream: %s",
              opj_messages(job));
    goto done;
  }
  st = convert_image(job, image);

done:
  if (stream != NULL) opj_stream_destroy(stream);
  if (codec != NULL) opj_destroy_codec(codec);
  if (image != NULL) opj_image_destroy(image);
  if (st != CXR_OK) {
    free(job->out);
    job->out = NULL;
    job->out_bytes = 0;
    job->out_elems = 0;
  }
  return st;
}

static void execute_decode(napi_env env, void *data) {
  (void)env; /* must not be used off the main thread */
  cxr_job *job = (cxr_job *)data;
  job->status = run_decode(job);
  /* The compressed bytes are no longer needed; release them early. */
  free(job->input);
  job->input = NULL;
}

/* ------------------------------------------------------------------------ */
/* N-API glue (main thread)                                                  */
/* ------------------------------------------------------------------------ */

static void job_free(cxr_job *job) {
  if (job == NULL) return;
  free(job->input);
  free(job->out);
  if (job->opj_msg_mutex_ok) uv_mutex_destroy(&job->opj_msg_mutex);
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

static napi_status build_result(napi_env env, cxr_job *job, napi_value *result) {
  napi_status s;
  napi_value obj, ab, ta, jsigned;
  void *ab_data = NULL;
  if ((s = napi_create_object(env, &obj)) != napi_ok) return s;
  if ((s = napi_create_arraybuffer(env, job->out_bytes, &ab_data, &ab)) != napi_ok) return s;
  if (job->out_bytes > 0) {
    if (ab_data == NULL) return napi_generic_failure;
    memcpy(ab_data, job->out, job->out_bytes);
  }
  free(job->out);
  job->out = NULL;
  if ((s = napi_create_typedarray(env, job->out_type, job->out_elems, ab, 0, &ta)) != napi_ok)
    return s;
  if ((s = set_u32(env, obj, "width", job->width)) != napi_ok) return s;
  if ((s = set_u32(env, obj, "height", job->height)) != napi_ok) return s;
  if ((s = set_u32(env, obj, "components", job->components)) != napi_ok) return s;
  if ((s = set_u32(env, obj, "precision", job->precision)) != napi_ok) return s;
  if ((s = napi_get_boolean(env, job->is_signed, &jsigned)) != napi_ok) return s;
  if ((s = napi_set_named_property(env, obj, "signed", jsigned)) != napi_ok) return s;
  if ((s = napi_set_named_property(env, obj, "data", ta)) != napi_ok) return s;
  *result = obj;
  return napi_ok;
}

static void complete_decode(napi_env env, napi_status status, void *data) {
  cxr_job *job = (cxr_job *)data;
  if (status != napi_ok) {
    reject_with(env, job->deferred, "ERR_J2K_DECODE", "JPEG 2000 decode was cancelled");
  } else if (job->status != CXR_OK) {
    reject_with(env, job->deferred, status_code(job->status), job->message);
  } else {
    napi_value result = NULL;
    if (build_result(env, job, &result) == napi_ok && result != NULL) {
      if (napi_resolve_deferred(env, job->deferred, result) != napi_ok) {
        reject_with(env, job->deferred, "ERR_J2K_DECODE", "cannot resolve the decode promise");
      }
    } else {
      reject_with(env, job->deferred, "ERR_J2K_NO_MEMORY",
                  "cannot create the JavaScript result for the decoded image");
    }
  }
  napi_delete_async_work(env, job->work);
  job_free(job);
}

/* Throws synchronously (the TS wrapper is async, so this becomes a rejection)
 * and frees the partially built job. type_error selects TypeError vs Error. */
#define THROW_IF(cond, type_error, msg)                               \
  do {                                                                \
    if (cond) {                                                       \
      if (type_error) {                                               \
        napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", msg);      \
      } else {                                                        \
        napi_throw_error(env, "ERR_J2K_INTERNAL", msg);               \
      }                                                               \
      job_free(job);                                                  \
      return NULL;                                                    \
    }                                                                 \
  } while (0)

static bool get_number(napi_env env, napi_value v, double *out) {
  napi_valuetype t;
  if (napi_typeof(env, v, &t) != napi_ok || t != napi_number) return false;
  if (napi_get_value_double(env, v, out) != napi_ok) return false;
  return isfinite(*out) != 0;
}

/* decode(input: Uint8Array, threads: number, maxPixels: number): Promise */
static napi_value js_decode(napi_env env, napi_callback_info info) {
  cxr_job *job = NULL;
  size_t argc = 3;
  napi_value argv[3];
  THROW_IF(napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok, 0,
           "napi_get_cb_info failed");
  THROW_IF(argc < 3, 1, "decode(input, threads, maxPixels) expects 3 arguments");

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

  double threads_d = 0, max_d = 0;
  THROW_IF(!get_number(env, argv[1], &threads_d), 1, "threads must be a finite number");
  THROW_IF(!get_number(env, argv[2], &max_d) || max_d < 1 || floor(max_d) != max_d, 1,
           "maxPixels must be a positive integer");

  job = (cxr_job *)calloc(1, sizeof *job);
  THROW_IF(job == NULL, 0, "out of memory");
  job->opj_msg_mutex_ok = uv_mutex_init(&job->opj_msg_mutex) == 0;
  THROW_IF(!job->opj_msg_mutex_ok, 0, "uv_mutex_init failed");
  job->threads = threads_d < 1 ? 1 : threads_d > CXR_MAX_THREADS ? CXR_MAX_THREADS : (int)threads_d;
  job->max_samples = max_d >= CXR_MAX_SAFE_INTEGER ? (uint64_t)CXR_MAX_SAFE_INTEGER : (uint64_t)max_d;

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
  THROW_IF(napi_create_string_utf8(env, "cxr_openjpeg.decode", NAPI_AUTO_LENGTH, &resource_name) !=
               napi_ok,
           0, "napi_create_string_utf8 failed");
  THROW_IF(napi_create_promise(env, &job->deferred, &promise) != napi_ok, 0,
           "napi_create_promise failed");
  if (napi_create_async_work(env, NULL, resource_name, execute_decode, complete_decode, job,
                             &job->work) != napi_ok) {
    reject_with(env, job->deferred, "ERR_J2K_INTERNAL", "napi_create_async_work failed");
    job_free(job);
    return promise;
  }
  if (napi_queue_async_work(env, job->work) != napi_ok) {
    napi_delete_async_work(env, job->work);
    reject_with(env, job->deferred, "ERR_J2K_INTERNAL", "napi_queue_async_work failed");
    job_free(job);
    return promise;
  }
  return promise;
}

NAPI_MODULE_INIT(/* napi_env env, napi_value exports */) {
  napi_value fn, version, thread_support, max_threads;
  if (napi_create_function(env, "decode", NAPI_AUTO_LENGTH, js_decode, NULL, &fn) != napi_ok ||
      napi_set_named_property(env, exports, "decode", fn) != napi_ok) {
    napi_throw_error(env, NULL, "cxr_openjpeg: cannot export decode");
    return NULL;
  }
  const char *v = opj_version();
  if (napi_create_string_utf8(env, v != NULL ? v : "unknown", NAPI_AUTO_LENGTH, &version) !=
          napi_ok ||
      napi_set_named_property(env, exports, "openjpegVersion", version) != napi_ok ||
      napi_get_boolean(env, opj_has_thread_support() != 0, &thread_support) != napi_ok ||
      napi_set_named_property(env, exports, "threadSupport", thread_support) != napi_ok ||
      napi_create_uint32(env, CXR_MAX_THREADS, &max_threads) != napi_ok ||
      napi_set_named_property(env, exports, "maxThreads", max_threads) != napi_ok) {
    napi_throw_error(env, NULL, "cxr_openjpeg: cannot export properties");
    return NULL;
  }
  return exports;
}
