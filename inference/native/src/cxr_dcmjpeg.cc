/*
 * cxr_dcmjpeg: JPEG lossless (process 14, any predictor, 9 to 16 bits, one component) decoded by Debian's DCMTK
 * (libdcmtk: dcmjpeg over its 16-bit IJG library) on the libuv thread pool.
 *
 * dcmjs-codecs runs the same DCMTK code compiled to WebAssembly on the main thread; natively it takes about three
 * quarters of the time, and the event loop stays free while it runs.
 *
 * JS surface (typed in inference/src/codecs/dcmjpeg-native.ts):
 *   decodeLossless(codestream: Uint8Array, columns: number, rows: number, signed: boolean) -> Promise<Uint8Array>
 *     resolves with rows * columns 16-bit samples, little endian (the host's order: Node runs on little-endian
 *     machines here); rejects with an Error whose `code` is
 *       ERR_JPEG_UNSUPPORTED  not a one-component lossless (SOF3) codestream, or another size than the header's:
 *                             the caller uses the WebAssembly decoder
 *       ERR_JPEG_DECODE       DCMTK refused the data (corrupt or truncated)
 *       ERR_JPEG_NO_MEMORY    an allocation failed
 *   dcmtkVersion: string
 *
 * The frame header is read here, before DCMTK sees the data: the output buffer is sized from the caller's
 * rows and columns, and a codestream that says otherwise is refused rather than trusted.
 */
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <new>

#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmdata/dcuid.h>
#include <dcmtk/dcmjpeg/djcparam.h>
#include <dcmtk/dcmjpeg/djdijg16.h>
#include <dcmtk/oflog/oflog.h>
#include <node_api.h>

namespace {

enum class Status { ok, unsupported, decode, no_memory };

struct Job {
  uint8_t *input = nullptr;
  size_t input_length = 0;
  uint32_t columns = 0;
  uint32_t rows = 0;
  bool is_signed = false;
  napi_async_work work = nullptr;
  napi_deferred deferred = nullptr;
  Status status = Status::ok;
  char message[512] = {0};
  uint8_t *output = nullptr;
  size_t output_length = 0;
};

Status fail(Job *job, Status status, const char *text) {
  std::snprintf(job->message, sizeof job->message, "%s", text);
  job->status = status;
  return status;
}

uint16_t read_be16(const uint8_t *p) { return static_cast<uint16_t>((p[0] << 8) | p[1]); }

/* Walks the markers from SOI to the first frame header; only a one-component SOF3 of the expected size passes. */
Status check_frame_header(Job *job) {
  const uint8_t *data = job->input;
  const size_t length = job->input_length;
  if (length < 4 || data[0] != 0xFF || data[1] != 0xD8) return fail(job, Status::unsupported, "no JPEG start-of-image marker");
  size_t at = 2;
  while (at + 4 <= length) {
    if (data[at] != 0xFF) return fail(job, Status::unsupported, "JPEG marker expected");
    const uint8_t marker = data[at + 1];
    if (marker == 0xFF) {  // fill byte
      at += 1;
      continue;
    }
    const size_t segment = read_be16(data + at + 2);
    if (segment < 2 || at + 2 + segment > length) return fail(job, Status::decode, "JPEG segment runs past the end of the data");
    const bool is_frame_header = marker >= 0xC0 && marker <= 0xCF && marker != 0xC4 && marker != 0xC8 && marker != 0xCC;
    if (is_frame_header) {
      if (marker != 0xC3) return fail(job, Status::unsupported, "not a lossless (SOF3) JPEG");
      if (segment < 8 + 3) return fail(job, Status::decode, "JPEG frame header too short");
      const uint8_t *frame = data + at + 4;
      const unsigned precision = frame[0];
      const unsigned height = read_be16(frame + 1);
      const unsigned width = read_be16(frame + 3);
      const unsigned components = frame[5];
      if (components != 1) return fail(job, Status::unsupported, "JPEG with more than one component");
      // DCMTK itself decodes 8 bits and fewer with its 8-bit library: those stay with the WebAssembly build.
      if (precision < 9 || precision > 16) return fail(job, Status::unsupported, "JPEG lossless precision outside 9 to 16");
      if (width != job->columns || height != job->rows) {
        std::snprintf(job->message, sizeof job->message, "the codestream is %ux%u, the header says %ux%u", width, height, job->columns, job->rows);
        job->status = Status::unsupported;
        return job->status;
      }
      return Status::ok;
    }
    at += 2 + segment;
  }
  return fail(job, Status::decode, "no JPEG frame header");
}

void execute(napi_env, void *data) {
  Job *job = static_cast<Job *>(data);
  if (check_frame_header(job) != Status::ok) return;
  job->output_length = static_cast<size_t>(job->rows) * job->columns * 2;
  if (job->output_length > UINT32_MAX || job->input_length > UINT32_MAX) {
    fail(job, Status::unsupported, "image or codestream above 4 GiB");
    return;
  }
  job->output = static_cast<uint8_t *>(std::malloc(job->output_length));
  if (job->output == nullptr) {
    fail(job, Status::no_memory, "out of memory for the decoded image");
    return;
  }
  DJCodecParameter parameters(ECC_lossyYCbCr, EDC_never, EUC_never, EPC_default);
  DJDecompressIJG16Bit decoder(parameters, OFFalse);
  OFCondition condition = decoder.init();
  if (condition.good()) {
    condition = decoder.decode(job->input, static_cast<Uint32>(job->input_length), job->output, static_cast<Uint32>(job->output_length),
                               job->is_signed ? OFTrue : OFFalse);
  }
  if (condition.bad()) fail(job, Status::decode, condition.text());
}

const char *status_code(Status status) {
  switch (status) {
    case Status::unsupported:
      return "ERR_JPEG_UNSUPPORTED";
    case Status::no_memory:
      return "ERR_JPEG_NO_MEMORY";
    default:
      return "ERR_JPEG_DECODE";
  }
}

void finalize_output(napi_env, void *data, void *) { std::free(data); }

void complete(napi_env env, napi_status, void *data) {
  Job *job = static_cast<Job *>(data);
  napi_value result = nullptr;
  if (job->status == Status::ok) {
    napi_value buffer;
    if (napi_create_external_arraybuffer(env, job->output, job->output_length, finalize_output, nullptr, &buffer) == napi_ok &&
        napi_create_typedarray(env, napi_uint8_array, job->output_length, buffer, 0, &result) == napi_ok) {
      job->output = nullptr;  // owned by the ArrayBuffer now
      napi_resolve_deferred(env, job->deferred, result);
    } else {
      job->status = Status::no_memory;
      std::snprintf(job->message, sizeof job->message, "could not hand the decoded image to JavaScript");
    }
  }
  if (job->status != Status::ok) {
    napi_value code, message, error;
    napi_create_string_utf8(env, status_code(job->status), NAPI_AUTO_LENGTH, &code);
    napi_create_string_utf8(env, job->message, NAPI_AUTO_LENGTH, &message);
    napi_create_error(env, code, message, &error);
    napi_reject_deferred(env, job->deferred, error);
  }
  napi_delete_async_work(env, job->work);
  std::free(job->output);
  std::free(job->input);
  delete job;
}

napi_value throw_type_error(napi_env env, const char *message) {
  napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", message);
  return nullptr;
}

bool get_dimension(napi_env env, napi_value value, uint32_t *out) {
  double number;
  if (napi_get_value_double(env, value, &number) != napi_ok) return false;
  if (!(number >= 1 && number <= 65535) || number != static_cast<double>(static_cast<uint32_t>(number))) return false;
  *out = static_cast<uint32_t>(number);
  return true;
}

napi_value decode_lossless(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  if (napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr) != napi_ok || argc != 4) {
    return throw_type_error(env, "decodeLossless(codestream, columns, rows, signed)");
  }
  bool is_typed = false;
  napi_typedarray_type type;
  size_t length;
  void *bytes;
  napi_value arraybuffer;
  size_t offset;
  if (napi_is_typedarray(env, argv[0], &is_typed) != napi_ok || !is_typed ||
      napi_get_typedarray_info(env, argv[0], &type, &length, &bytes, &arraybuffer, &offset) != napi_ok || type != napi_uint8_array) {
    return throw_type_error(env, "codestream must be a Uint8Array");
  }
  auto *job = new (std::nothrow) Job();
  if (job == nullptr) return throw_type_error(env, "out of memory");
  bool is_signed = false;
  if (!get_dimension(env, argv[1], &job->columns) || !get_dimension(env, argv[2], &job->rows) ||
      napi_get_value_bool(env, argv[3], &is_signed) != napi_ok) {
    delete job;
    return throw_type_error(env, "columns and rows must be integers from 1 to 65535, signed a boolean");
  }
  job->is_signed = is_signed;
  // A copy: the caller may reuse or collect its buffer while the thread pool decodes.
  job->input = static_cast<uint8_t *>(std::malloc(length > 0 ? length : 1));
  if (job->input == nullptr) {
    delete job;
    return throw_type_error(env, "out of memory");
  }
  std::memcpy(job->input, bytes, length);
  job->input_length = length;
  napi_value promise, name;
  napi_create_promise(env, &job->deferred, &promise);
  napi_create_string_utf8(env, "cxr_dcmjpeg.decodeLossless", NAPI_AUTO_LENGTH, &name);
  napi_create_async_work(env, nullptr, name, execute, complete, job, &job->work);
  napi_queue_async_work(env, job->work);
  return promise;
}

napi_value init(napi_env env, napi_value exports) {
  // DCMTK logs warnings to stderr by default; our errors carry its message, nothing else should print.
  OFLog::configure(OFLogger::FATAL_LOG_LEVEL);
  napi_value decode, version;
  napi_create_function(env, "decodeLossless", NAPI_AUTO_LENGTH, decode_lossless, nullptr, &decode);
  napi_create_string_utf8(env, OFFIS_DCMTK_VERSION_STRING, NAPI_AUTO_LENGTH, &version);
  napi_set_named_property(env, exports, "decodeLossless", decode);
  napi_set_named_property(env, exports, "dcmtkVersion", version);
  return exports;
}

}  // namespace

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
