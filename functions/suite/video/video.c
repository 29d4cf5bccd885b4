/* video (FaaSnap's ffmpeg function): flips every frame of a clip horizontally. The original
 * decoded a 1080p video with ffmpeg, applied hflip and re-encoded it; here the clip is raw RGB24
 * frames (no codec), flipped in place and written back in the same format.
 *
 * Clip object (little-endian u32 header, then frames*height*width*3 bytes, rows top-down):
 *   +0 "RV24" | +4 width | +8 height | +12 frames | +16 pixels */
#include "suite.h"

static void flip_row(uint8_t *row, uint32_t width) {
  uint8_t *l = row, *r = row + (size_t)(width - 1) * 3;
  while (l < r) {
    uint8_t t0 = l[0], t1 = l[1], t2 = l[2];
    l[0] = r[0];
    l[1] = r[1];
    l[2] = r[2];
    r[0] = t0;
    r[1] = t1;
    r[2] = t2;
    l += 3;
    r -= 3;
  }
}

THAW_EXPORT("handle") int32_t handle(void) {
  suite_event ev;
  if (suite_read_event(&ev) != 0) return suite_fail("request must be {\"input\": key, \"output\": key}");

  double t0 = suite_now();
  int32_t len;
  uint8_t *clip = suite_read_object(ev.input, &len);
  if (clip == NULL) return suite_fail_read(&ev, len);
  double t1 = suite_now();

  const uint32_t *hdr = (const uint32_t *)clip;
  if (len < 16 || memcmp(clip, "RV24", 4) != 0) return suite_fail("input is not an RV24 clip");
  uint32_t width = hdr[1], height = hdr[2], frames = hdr[3];
  if (width == 0 || (size_t)len != 16 + (size_t)width * height * frames * 3) return suite_fail("RV24 clip: size does not match its header");
  uint8_t *pixels = clip + 16;
  size_t rows = (size_t)height * frames;
  for (size_t y = 0; y < rows; y++) flip_row(pixels + y * width * 3, width);
  double t2 = suite_now();

  suite_write_object(ev.output, clip, (size_t)len);
  double t3 = suite_now();
  free(clip);
  char summary[160];
  snprintf(summary, sizeof summary, "{\"width\":%u,\"height\":%u,\"frames\":%u,\"output_bytes\":%d}", width, height, frames, len);
  return suite_reply(&ev, t1 - t0, t2 - t1, t3 - t2, summary);
}
