/*
 * libFuzzer harness: the C batch path (fs_batch_run, FS_SRC_MEMORY) on one
 * encoded image, as decode_batch runs it for a JPEG, PNG, WebP, BMP or
 * PGM/PPM.
 *
 * Input layout: 4 option bytes, then the encoded image.
 *   [0] output width  - 1 (mod 96)      [1] output height - 1 (mod 96)
 *   [2] bits 0-1 mode (L, RGB, RGBA, RGB)  bit 2 float32  bit 3 keep_aspect_ratio
 *       bit 4 dct_scaling  bit 5 allow_truncated  bits 6-7 == 3: decode_only
 *   [3] filter (mod 6)
 * The limits are the Python API's defaults (fastseq.DEFAULT_MAX_PIXELS,
 * DEFAULT_MAX_SCANS); every other field of fs_limits / fs_batch_opts is
 * zero, which means "default / no limit".
 *
 * Oracles: ASan/UBSan/LSan, plus the batch contract: a failed image's slot
 * is zero-filled and has a message, a successful one reports its source size.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "batch.h"
#include "pool.h"

#define OPT_BYTES 4
#define DEFAULT_MAX_PIXELS 178956970u   /* fastseq.DEFAULT_MAX_PIXELS */
#define DEFAULT_MAX_SCANS 500           /* fastseq.DEFAULT_MAX_SCANS */

static const int kModes[4] = {FS_MODE_L, FS_MODE_RGB, FS_MODE_RGBA, FS_MODE_RGB};

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    /* One worker: its decoder state and scratch are reused from input to
     * input, as in a long-running process, and runs stay reproducible. */
    if (fs_pool_set_threads(1) != FS_OK) abort();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < OPT_BYTES) return 0;

    fs_batch_opts o;
    memset(&o, 0, sizeof o);
    o.out_width = 1 + data[0] % 96;
    o.out_height = 1 + data[1] % 96;
    o.out_mode = kModes[data[2] & 3];
    o.out_dtype = (data[2] & 4) ? FS_DTYPE_F32 : FS_DTYPE_U8;
    o.scale = o.out_dtype == FS_DTYPE_F32 ? 1.0f / 255.0f : 1.0f;
    o.offset = 0.0f;
    o.keep_aspect_ratio = (data[2] >> 3) & 1;
    o.dct_scaling = (data[2] >> 4) & 1;
    o.decode_only = (data[2] >> 6) == 3;
    o.filter = data[3] % 6;
    o.limits.max_pixels = DEFAULT_MAX_PIXELS;
    o.limits.max_scans = DEFAULT_MAX_SCANS;
    o.limits.allow_truncated = (data[2] >> 5) & 1;
    /* fastseq's defaults (fastseq/batch.py), except max_memory: 512 MiB keeps
     * one decode under libFuzzer's -rss_limit_mb, so a header that claims a
     * huge image is refused by the limit rather than reported as an OOM. */
    o.limits.max_file_bytes = (uint64_t)2 << 30;
    o.limits.max_memory = (uint64_t)512 << 20;
    o.limits.max_scan_pixels = 16 * (uint64_t)DEFAULT_MAX_PIXELS;

    size_t elem = o.out_dtype == FS_DTYPE_F32 ? sizeof(float) : 1;
    o.out_row_stride = (ptrdiff_t)((size_t)o.out_width *
                                   (size_t)fs_mode_channels(o.out_mode) * elem);
    size_t slot = (size_t)o.out_row_stride * (size_t)o.out_height;
    /* Exactly the slot: ASan catches a write past it.  0xA5 so that the
     * zero-fill check below means something. */
    uint8_t *out = (uint8_t *)malloc(slot);
    if (!out) return 0;
    memset(out, 0xA5, slot);

    fs_task t;
    memset(&t, 0, sizeof t);
    t.kind = FS_SRC_MEMORY;
    /* The encoded bytes end where libFuzzer's buffer ends, so a read past
     * them is caught. */
    t.data = data + OPT_BYTES;
    t.size = size - OPT_BYTES;
    t.out = out;

    int st = fs_batch_run(&o, &t, 1);
    if (st != FS_OK) {
        fprintf(stderr, "fs_batch_run: pool error %d\n", st);
        abort();
    }
    if (t.status != FS_OK) {
        if (t.msg[0] == '\0') {
            fprintf(stderr, "status %d without a message\n", t.status);
            abort();
        }
        if (!o.decode_only)
            for (size_t i = 0; i < slot; i++)
                if (out[i] != 0) {
                    fprintf(stderr, "failed image (status %d) left byte %zu = %d\n",
                            t.status, i, out[i]);
                    abort();
                }
    } else if (t.src_width < 1 || t.src_height < 1 ||
               (uint64_t)t.src_width * (uint64_t)t.src_height > DEFAULT_MAX_PIXELS ||
               (t.dct_denom != 1 && t.dct_denom != 2 && t.dct_denom != 4 &&
                t.dct_denom != 8)) {
        fprintf(stderr, "success with source %dx%d, dct 1/%d\n", t.src_width,
                t.src_height, t.dct_denom);
        abort();
    }
    free(out);
    return 0;
}
