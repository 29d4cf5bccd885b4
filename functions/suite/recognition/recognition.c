/* recognition (FaaSnap): classifies images with a ResNet-style CNN. The original ran a
 * pretrained ResNet-50 in PyTorch, loading the model at init; here the network is smaller in
 * depth (stem, six residual blocks, ~25M parameters, ~100 MB of float32), its weights are
 * synthetic (generated deterministically by src/suite/inputs/recognition.ts, batch norm already
 * folded into each convolution's bias), and thaw_init reads them from the object store
 * ("recognition/model"): that model state is what a snapshot saves. The request classifies every
 * image of the input object; output object: the logits, images x classes little-endian float32.
 *
 * Model object (little-endian):
 *   +0 "TRN1" | +4 version 1 | +8 op count K | +12 classes | +16 K x {kind, in, out, stride} u32
 *   then the float32 parameters, op by op:
 *     CONV  (1): w[out][in][3][3], b[out]; ReLU after
 *     BLOCK (2): w1[out][in][3][3], b1[out], w2[out][out][3][3], b2[out],
 *                and when in != out or stride != 1 a projection wp[out][in], bp[out] (1x1, stride)
 *                y = relu(conv2(relu(conv1(x))) + shortcut(x))
 *     FC    (3): global average pool, then w[out][in], b[out] (the logits)
 * Images object: +0 "TIMG" | +4 count | +8 height | +12 width | +16 count x height x width x RGB u8
 * Pixels enter the network as (v - 127.5) / 64, channel-major. Every sum runs in float32 in a
 * fixed order (bias, then input channel, kernel row, kernel column) that the TypeScript check
 * repeats. */
#include "suite.h"

#define MODEL_KEY "recognition/model"
#define MAX_OPS 64

enum { OP_CONV = 1, OP_BLOCK = 2, OP_FC = 3 };

typedef struct {
  uint32_t kind, in, out, stride;
  const float *w1, *b1, *w2, *b2, *wp, *bp;
} op;

typedef struct {
  float *data;
  uint32_t c, h, w;
} tensor;

/* Model state, filled by thaw_init and kept by snapshots. */
static uint8_t *model_bytes;
static int32_t model_len;
static op ops[MAX_OPS];
static uint32_t op_count, classes, param_count;
static char model_error[160];

static int parse_model(void) {
  const uint32_t *hdr = (const uint32_t *)model_bytes;
  if (model_len < 16 || memcmp(model_bytes, "TRN1", 4) != 0 || hdr[1] != 1) return -1;
  op_count = hdr[2];
  classes = hdr[3];
  if (op_count == 0 || op_count > MAX_OPS || (size_t)model_len < 16 + (size_t)op_count * 16) return -1;
  const float *p = (const float *)(model_bytes + 16 + op_count * 16);
  const float *end = (const float *)(model_bytes + model_len);
  for (uint32_t i = 0; i < op_count; i++) {
    op *o = &ops[i];
    const uint32_t *d = hdr + 4 + i * 4;
    *o = (op){.kind = d[0], .in = d[1], .out = d[2], .stride = d[3]};
    size_t in = o->in, out = o->out;
    if (in == 0 || out == 0 || o->stride == 0) return -1;
    size_t need;
    switch (o->kind) {
      case OP_CONV: need = out * in * 9 + out; break;
      case OP_BLOCK: need = out * in * 9 + out + out * out * 9 + out + ((in != out || o->stride != 1) ? out * in + out : 0); break;
      case OP_FC: need = out * in + out; break;
      default: return -1;
    }
    if ((size_t)(end - p) < need) return -1;
    o->w1 = p;
    p += o->kind == OP_FC ? out * in : out * in * 9;
    o->b1 = p;
    p += out;
    if (o->kind == OP_BLOCK) {
      o->w2 = p;
      p += out * out * 9;
      o->b2 = p;
      p += out;
      if (in != out || o->stride != 1) {
        o->wp = p;
        p += out * in;
        o->bp = p;
        p += out;
      }
    }
    param_count += (uint32_t)need;
  }
  if (p != end || ops[op_count - 1].kind != OP_FC || ops[op_count - 1].out != classes) return -1;
  return 0;
}

/* The function's init: load the model, as the original loaded ResNet-50 before any request. */
THAW_EXPORT("thaw_init") void thaw_init(void) {
  model_bytes = suite_read_object(MODEL_KEY, &model_len);
  if (model_bytes == NULL) {
    snprintf(model_error, sizeof model_error, model_len == -2 ? "out of memory loading %s" : "model object %s not found at init", MODEL_KEY);
    return;
  }
  if (parse_model() != 0) {
    snprintf(model_error, sizeof model_error, "model object %s is not a valid TRN1 model", MODEL_KEY);
    free(model_bytes);
    model_bytes = NULL;
  }
}

static int alloc_tensor(tensor *t, uint32_t c, uint32_t h, uint32_t w) {
  t->c = c;
  t->h = h;
  t->w = w;
  t->data = malloc((size_t)c * h * w * sizeof(float));
  return t->data == NULL ? -1 : 0;
}

/* 3x3 convolution, padding 1: out = bias + sum over (ic, ky, kx). The input is copied into a
 * zero-bordered buffer so the inner loop over a row has no bounds checks and vectorises. */
static int conv3x3(const tensor *x, const float *w, const float *b, uint32_t out_c, uint32_t stride, tensor *y) {
  uint32_t ho = (x->h - 1) / stride + 1, wo = (x->w - 1) / stride + 1;
  uint32_t ph = x->h + 2, pw = x->w + 2;
  float *pad = calloc((size_t)x->c * ph * pw, sizeof(float));
  if (pad == NULL || alloc_tensor(y, out_c, ho, wo) != 0) return -1;
  for (uint32_t c = 0; c < x->c; c++)
    for (uint32_t r = 0; r < x->h; r++)
      memcpy(pad + ((size_t)c * ph + r + 1) * pw + 1, x->data + ((size_t)c * x->h + r) * x->w, x->w * sizeof(float));
  for (uint32_t oc = 0; oc < out_c; oc++) {
    float *o = y->data + (size_t)oc * ho * wo;
    for (size_t i = 0; i < (size_t)ho * wo; i++) o[i] = b[oc];
    for (uint32_t ic = 0; ic < x->c; ic++) {
      const float *k = w + ((size_t)oc * x->c + ic) * 9;
      const float *plane = pad + (size_t)ic * ph * pw;
      for (uint32_t ky = 0; ky < 3; ky++) {
        for (uint32_t kx = 0; kx < 3; kx++) {
          float kv = k[ky * 3 + kx];
          for (uint32_t r = 0; r < ho; r++) {
            float *restrict orow = o + (size_t)r * wo;
            const float *restrict prow = plane + (size_t)(r * stride + ky) * pw + kx;
            if (stride == 1) {
              for (uint32_t c = 0; c < wo; c++) orow[c] += kv * prow[c];
            } else {
              for (uint32_t c = 0; c < wo; c++) orow[c] += kv * prow[c * stride];
            }
          }
        }
      }
    }
  }
  free(pad);
  return 0;
}

/* 1x1 convolution with stride, no padding (the residual projection). */
static int conv1x1(const tensor *x, const float *w, const float *b, uint32_t out_c, uint32_t stride, tensor *y) {
  uint32_t ho = (x->h - 1) / stride + 1, wo = (x->w - 1) / stride + 1;
  if (alloc_tensor(y, out_c, ho, wo) != 0) return -1;
  for (uint32_t oc = 0; oc < out_c; oc++) {
    float *o = y->data + (size_t)oc * ho * wo;
    for (size_t i = 0; i < (size_t)ho * wo; i++) o[i] = b[oc];
    for (uint32_t ic = 0; ic < x->c; ic++) {
      float kv = w[(size_t)oc * x->c + ic];
      const float *plane = x->data + (size_t)ic * x->h * x->w;
      for (uint32_t r = 0; r < ho; r++)
        for (uint32_t c = 0; c < wo; c++) o[(size_t)r * wo + c] += kv * plane[(size_t)r * stride * x->w + c * stride];
    }
  }
  return 0;
}

static void relu(tensor *t) {
  size_t n = (size_t)t->c * t->h * t->w;
  for (size_t i = 0; i < n; i++) t->data[i] = t->data[i] > 0.0f ? t->data[i] : 0.0f;
}

/* Runs the network on x (consumed) and writes classes logits. Returns 0, or -1 out of memory. */
static int forward(tensor x, float *logits) {
  for (uint32_t i = 0; i < op_count; i++) {
    const op *o = &ops[i];
    tensor y;
    if (o->kind == OP_CONV) {
      if (conv3x3(&x, o->w1, o->b1, o->out, o->stride, &y) != 0) return -1;
      relu(&y);
    } else if (o->kind == OP_BLOCK) {
      tensor h, sc;
      if (conv3x3(&x, o->w1, o->b1, o->out, o->stride, &h) != 0) return -1;
      relu(&h);
      if (conv3x3(&h, o->w2, o->b2, o->out, 1, &y) != 0) return -1;
      free(h.data);
      const float *shortcut = x.data;
      if (o->wp != NULL) {
        if (conv1x1(&x, o->wp, o->bp, o->out, o->stride, &sc) != 0) return -1;
        shortcut = sc.data;
      }
      size_t n = (size_t)y.c * y.h * y.w;
      for (size_t k = 0; k < n; k++) y.data[k] = y.data[k] + shortcut[k];
      if (o->wp != NULL) free(sc.data);
      relu(&y);
    } else {
      size_t hw = (size_t)x.h * x.w;
      float *pooled = malloc(x.c * sizeof(float));
      if (pooled == NULL) return -1;
      for (uint32_t c = 0; c < x.c; c++) {
        float s = 0.0f;
        for (size_t k = 0; k < hw; k++) s += x.data[c * hw + k];
        pooled[c] = s / (float)hw;
      }
      for (uint32_t k = 0; k < o->out; k++) {
        float s = o->b1[k];
        for (uint32_t c = 0; c < o->in; c++) s += o->w1[(size_t)k * o->in + c] * pooled[c];
        logits[k] = s;
      }
      free(pooled);
      free(x.data);
      return 0;
    }
    free(x.data);
    x = y;
  }
  free(x.data);
  return -1;
}

THAW_EXPORT("handle") int32_t handle(void) {
  if (model_bytes == NULL) return suite_fail(model_error[0] ? model_error : "thaw_init has not run");
  suite_event ev;
  if (suite_read_event(&ev) != 0) return suite_fail("request must be {\"input\": key, \"output\": key}");

  double t0 = suite_now();
  int32_t len;
  uint8_t *in = suite_read_object(ev.input, &len);
  if (in == NULL) return suite_fail_read(&ev, len);
  double t1 = suite_now();

  const uint32_t *hdr = (const uint32_t *)in;
  if (len < 16 || memcmp(in, "TIMG", 4) != 0) return suite_fail("input is not a TIMG image set");
  uint32_t count = hdr[1], height = hdr[2], width = hdr[3];
  if (count == 0 || count > 64 || height == 0 || width == 0 || (size_t)len != 16 + (size_t)count * height * width * 3) {
    return suite_fail("TIMG image set: size does not match its header");
  }
  if (ops[0].in != 3) return suite_fail("model does not take RGB input");
  float *logits = malloc((size_t)count * classes * sizeof(float));
  if (logits == NULL) return suite_fail("out of memory");
  char tops[64 * 12] = "";
  size_t tops_len = 0;
  double checksum = 0;
  for (uint32_t n = 0; n < count; n++) {
    const uint8_t *px = in + 16 + (size_t)n * height * width * 3;
    tensor x;
    if (alloc_tensor(&x, 3, height, width) != 0) return suite_fail("out of memory");
    for (size_t p = 0; p < (size_t)height * width; p++)
      for (uint32_t c = 0; c < 3; c++) x.data[c * (size_t)height * width + p] = ((float)px[p * 3 + c] - 127.5f) / 64.0f;
    float *l = logits + (size_t)n * classes;
    if (forward(x, l) != 0) return suite_fail("out of memory in the forward pass");
    uint32_t top = 0;
    for (uint32_t k = 0; k < classes; k++) {
      checksum += l[k];
      if (l[k] > l[top]) top = k;
    }
    tops_len += (size_t)snprintf(tops + tops_len, sizeof tops - tops_len, "%s%u", n ? "," : "", top);
  }
  free(in);
  double t2 = suite_now();

  suite_write_object(ev.output, logits, (size_t)count * classes * sizeof(float));
  double t3 = suite_now();
  free(logits);
  char summary[64 * 12 + 256];
  snprintf(summary, sizeof summary,
           "{\"images\":%u,\"height\":%u,\"width\":%u,\"classes\":%u,\"params\":%u,\"model_bytes\":%d,\"top1\":[%s],\"logits_checksum\":%.17g}",
           count, height, width, classes, param_count, model_len, tops, checksum);
  return suite_reply(&ev, t1 - t0, t2 - t1, t3 - t2, summary);
}
