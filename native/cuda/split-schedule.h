// The split-KV schedule (FlashMLA's idea, our code): spreads the KV work of B sequences over
// num_parts CTAs. A sequence costs ceil(len / 64) units plus kOverheadUnits; each part takes an
// equal share, so a long sequence is split across parts and short ones share one. Runs on the
// GPU (thread 0 of schedule_kernel) and on the host (the CPU-run test of its invariants).
//
// meta[p * kMetaInts + {0..4}] = begin_b, begin_tok, end_b (inclusive), end_tok, begin_split;
// an unused part has begin_b = -1. split_prefix[b + 1] - split_prefix[b] = splits of sequence b
// (>= 1, also for a zero-length sequence, whose one split writes out = 0 and lse = -inf).
#ifndef LATENTKV_CUDA_SPLIT_SCHEDULE_H_
#define LATENTKV_CUDA_SPLIT_SCHEDULE_H_

#include <stdint.h>

#if defined(__CUDACC__)
#define LKV_HOST_DEVICE __host__ __device__
#else
#define LKV_HOST_DEVICE
#endif

namespace lkv::cuda {

constexpr int kUnitTokens = 64;
constexpr int kOverheadUnits = 2;
constexpr int kMetaInts = 5;

// units[b] = ceil(seq_lens[b] / kUnitTokens) (precomputed, e.g. in shared memory).
template <typename Lens, typename Units>
LKV_HOST_DEVICE void compute_split_schedule(const Lens& seq_lens, const Units& units, int B, int num_parts,
                                            int32_t* meta, int32_t* split_prefix) {
  // Budget the overhead of every split the parts can create (at most B + num_parts - 1) and of
  // the tail a part leaves when it closes with less than one unit free: without it the shares
  // run out early and the last part, which must finish everything, gets several shares.
  long long total = 2LL * num_parts * kOverheadUnits;
  for (int b = 0; b < B; ++b) total += units[b] + kOverheadUnits;
  long long per_part = (total + num_parts - 1) / num_parts;
  if (per_part < kOverheadUnits + 1) per_part = kOverheadUnits + 1;

  int p = 0;
  long long cap = per_part;
  bool part_has_work = false;
  int last_end_b = 0, last_end_tok = 0;
  meta[0] = 0;
  meta[1] = 0;
  meta[4] = 0;
  split_prefix[0] = 0;
  for (int b = 0; b < B; ++b) {
    const int len = seq_lens[b];
    const int n = units[b];
    int u = 0, nsplit = 0;
    for (;;) {
      const long long avail = cap - kOverheadUnits;
      if (avail >= n - u || p == num_parts - 1) {  // finish the sequence in this part
        cap -= (n - u) + kOverheadUnits;
        ++nsplit;
        part_has_work = true;
        last_end_b = b;
        last_end_tok = len;
        break;
      }
      if (avail >= 1) {  // take what fits, close the part, go on in the next one
        u += static_cast<int>(avail);
        ++nsplit;
        meta[p * kMetaInts + 2] = b;
        meta[p * kMetaInts + 3] = u * kUnitTokens;
        ++p;
        meta[p * kMetaInts + 0] = b;
        meta[p * kMetaInts + 1] = u * kUnitTokens;
        meta[p * kMetaInts + 4] = nsplit;
        cap = per_part;
        part_has_work = false;
        continue;
      }
      // This part is full (it has work: a fresh part always has avail >= 1): close it at its
      // last end and open the next at the start of sequence b.
      meta[p * kMetaInts + 2] = last_end_b;
      meta[p * kMetaInts + 3] = last_end_tok;
      ++p;
      meta[p * kMetaInts + 0] = b;
      meta[p * kMetaInts + 1] = u * kUnitTokens;
      meta[p * kMetaInts + 4] = nsplit;
      cap = per_part;
      part_has_work = false;
    }
    split_prefix[b + 1] = split_prefix[b] + nsplit;
  }
  if (part_has_work) {
    meta[p * kMetaInts + 2] = last_end_b;
    meta[p * kMetaInts + 3] = last_end_tok;
    ++p;
  }
  for (; p < num_parts; ++p) {
    meta[p * kMetaInts + 0] = -1;
    meta[p * kMetaInts + 1] = 0;
    meta[p * kMetaInts + 2] = -2;
    meta[p * kMetaInts + 3] = 0;
    meta[p * kMetaInts + 4] = 0;
  }
}

}  // namespace lkv::cuda

#endif  // LATENTKV_CUDA_SPLIT_SCHEDULE_H_
