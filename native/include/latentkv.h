/*
 * latentkv C ABI: Multi-head Latent Attention kernels over a paged latent KV cache.
 *
 * Plain C, no Node or framework types. Every call returns an lkv_status and, when an
 * lkv_error is passed, a human-readable message; nothing aborts or exits. Dimensions
 * follow DeepSeek-V2/V3 names (see DESIGN.md): H heads, R = kv_lora_rank,
 * P = qk_rope_head_dim, B sequences, Sq query tokens per sequence, L cached tokens.
 */
#ifndef LATENTKV_H_
#define LATENTKV_H_

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define LKV_VERSION_MAJOR 0
#define LKV_VERSION_MINOR 1
#define LKV_VERSION_PATCH 0
/* Bumped whenever a params struct or the backend table changes layout. */
#define LKV_API_VERSION 4

/* ------------------------------------------------------------------------------------ */
/* Status and errors                                                                     */

typedef enum lkv_status {
  LKV_OK = 0,
  LKV_ERR_INVALID_ARGUMENT = 1, /* a dimension, pointer, id or value is out of contract */
  LKV_ERR_UNSUPPORTED = 2,      /* valid request this backend or ISA cannot serve       */
  LKV_ERR_OUT_OF_MEMORY = 3,
  LKV_ERR_BACKEND_UNAVAILABLE = 4, /* backend or ISA not present on this machine        */
  LKV_ERR_INTERNAL = 5,
  LKV_STATUS_RANGE_ = 0x7fffffff /* not a status: see LKV_DTYPE_RANGE_ */
} lkv_status;

#define LKV_ERROR_MESSAGE_CAPACITY 512

/* Caller-owned error slot; one per call, so concurrent calls never share state. */
typedef struct lkv_error {
  lkv_status status;
  char message[LKV_ERROR_MESSAGE_CAPACITY];
} lkv_error;

/* Stable name of a status ("LKV_ERR_INVALID_ARGUMENT", ...). */
const char* lkv_status_name(lkv_status status);

/* ------------------------------------------------------------------------------------ */
/* Data types and the cache layout                                                       */

typedef enum lkv_dtype {
  LKV_DTYPE_F32 = 0,
  LKV_DTYPE_F16 = 1,
  LKV_DTYPE_BF16 = 2,
  LKV_DTYPE_INT8 = 3,    /* cache only: symmetric, one f32 scale per token  */
  LKV_DTYPE_FP8_E4M3 = 4, /* cache only: OCP e4m3fn, one f32 scale per token */
  /* Not a type. It makes every int32 value a value of the enum, so an out-of-range value from a
     caller is data that validation rejects, not undefined behaviour (the same in every enum). */
  LKV_DTYPE_RANGE_ = 0x7fffffff
} lkv_dtype;

const char* lkv_dtype_name(lkv_dtype dtype);
/* Bytes of one element; 1 for the quantized types. 0 for an unknown value. */
size_t lkv_dtype_size(lkv_dtype dtype);

/*
 * The cache is an array of pages [num_blocks, block_size, row]. One row holds one token:
 *
 *   f32 / f16 / bf16:  [ c (R) | k_rope (P * rope_heads) ]            all in the cache dtype
 *   int8 / fp8_e4m3:   [ c (R) quantized | pad to 4 B | scale f32 | k_rope (P * rope_heads) bf16 ]
 *
 * so the unquantized layout is exactly FlashMLA's [blocks, block_size, 1, R + P]. For the
 * quantized types c = q * scale per token, and the rope part stays in 16 bit because
 * rotary keys are sensitive to quantization.
 */
typedef struct lkv_cache_layout {
  size_t row_bytes;    /* bytes of one token row                        */
  size_t scale_offset; /* byte offset of the f32 scale (quantized only) */
  size_t rope_offset;  /* byte offset of k_rope within a row            */
  lkv_dtype rope_dtype;
} lkv_cache_layout;

lkv_status lkv_cache_layout_get(lkv_dtype cache_dtype, int32_t kv_lora_rank, int32_t rope_dim,
                                int32_t rope_heads, lkv_cache_layout* out, lkv_error* err);

/* ------------------------------------------------------------------------------------ */
/* Rotary position embedding                                                             */

typedef enum lkv_rope_style {
  LKV_ROPE_INTERLEAVED = 0, /* rotate pairs (2i, 2i+1): DeepSeek MLA, llama2.c      */
  LKV_ROPE_HALF_SPLIT = 1,  /* rotate pairs (i, i + P/2): Hugging Face Llama/Qwen */
  LKV_ROPE_STYLE_RANGE_ = 0x7fffffff
} lkv_rope_style;

typedef enum lkv_rope_scaling {
  LKV_ROPE_SCALING_NONE = 0,
  LKV_ROPE_SCALING_LINEAR = 1, /* inv_freq / factor                                  */
  LKV_ROPE_SCALING_LLAMA3 = 2, /* factor, low/high_freq_factor, original_max_position */
  LKV_ROPE_SCALING_YARN = 3,   /* factor, beta_fast/slow, original_max_position, mscale */
  LKV_ROPE_SCALING_TABLE = 4,  /* inv_freq[P/2] given explicitly                      */
  LKV_ROPE_SCALING_RANGE_ = 0x7fffffff
} lkv_rope_scaling;

typedef struct lkv_rope_params {
  lkv_rope_style style;
  lkv_rope_scaling scaling;
  float theta;                    /* base, e.g. 10000                                  */
  float factor;                   /* linear / llama3 / yarn                            */
  float low_freq_factor;          /* llama3                                            */
  float high_freq_factor;         /* llama3                                            */
  int32_t original_max_position;  /* llama3, yarn                                      */
  float beta_fast;                /* yarn (32 in DeepSeek-V3)                          */
  float beta_slow;                /* yarn (1)                                          */
  float attention_factor;         /* multiplies cos and sin; 0 means 1 (yarn's _mscale) */
  const float* inv_freq;          /* [P/2], only for LKV_ROPE_SCALING_TABLE             */
} lkv_rope_params;

/* Writes the P/2 inverse frequencies the kernels use for these params. */
lkv_status lkv_rope_inv_freq(const lkv_rope_params* rope, int32_t rope_dim, float* inv_freq_out,
                             lkv_error* err);

/* ------------------------------------------------------------------------------------ */
/* Kernel 1: mla_decode, the absorbed attention core (FlashMLA's contract)              */

/*
 * For sequence b, query token s (0..Sq-1), head h:
 *   the query sees cached tokens j < seq_lens[b] - Sq + 1 + s (causal inside the Sq window;
 *   with Sq = 1 that is every cached token);
 *   score_j = softmax_scale * (q_latent . c_j + q_rope . k_rope_{j, h / (H / rope_heads)})
 *   out = sum_j softmax(score)_j c_j, lse = log(sum_j exp(score_j)) (natural log).
 * A query that sees no token gets out = 0 and lse = -inf.
 * Cached tokens must already include the Sq new tokens (append first, then decode).
 */
typedef struct lkv_mla_decode_params {
  int32_t batch;              /* B >= 1                                             */
  int32_t q_len;              /* Sq >= 1                                            */
  int32_t num_heads;          /* H >= 1                                             */
  int32_t kv_lora_rank;       /* R >= 1                                             */
  int32_t rope_dim;           /* P >= 0, even                                       */
  int32_t rope_heads;         /* >= 1, divides H; 1 for DeepSeek/TransMLA           */
  int32_t block_size;         /* tokens per page, 1..256                            */
  int32_t num_blocks;         /* pages in cache, for bounds checks                  */
  int32_t max_blocks_per_seq; /* row stride of block_table                          */
  lkv_dtype cache_dtype;
  float softmax_scale;        /* required, finite; DeepSeek: mscale^2 / sqrt(Dn + P) */
  const float* q_latent;      /* [B, Sq, H, R]                                      */
  const float* q_rope;        /* [B, Sq, H, P], may be NULL when P == 0             */
  const void* cache;          /* [num_blocks, block_size, row] see lkv_cache_layout */
  const int32_t* block_table; /* [B, max_blocks_per_seq]                            */
  const int32_t* seq_lens;    /* [B], 0 <= len <= max_blocks_per_seq * block_size   */
  float* out;                 /* [B, Sq, H, R]                                      */
  float* lse;                 /* [B, H, Sq], may be NULL                            */
} lkv_mla_decode_params;

/* ------------------------------------------------------------------------------------ */
/* Kernel 2: mla_project_append, on-the-fly low-rank KV projection into the cache       */

/*
 * For each token t: [c ; k_rope] = W_kv_a x_t (W_kv_a is kv_a_proj_with_mqa, [R + P*rope_heads, E],
 * rows 0..R-1 latent); c <- RMSNorm(c) * norm_weight when norm_weight is given; RoPE at
 * positions[t] on each of the rope_heads keys; quantize and write to slot slot_mapping[t]
 * (slot = block * block_size + offset). A negative slot skips the token (padding).
 */
typedef struct lkv_mla_project_append_params {
  int32_t num_tokens;   /* T >= 0                                     */
  int32_t hidden_size;  /* E >= 1                                     */
  int32_t kv_lora_rank; /* R >= 1                                     */
  int32_t rope_dim;     /* P >= 0, even                               */
  int32_t rope_heads;   /* >= 1                                       */
  int32_t block_size;
  int32_t num_blocks;
  lkv_dtype cache_dtype;
  lkv_dtype weight_dtype;     /* f32, f16 or bf16                        */
  float norm_eps;             /* RMSNorm epsilon (DeepSeek: 1e-6)        */
  lkv_rope_params rope;
  const float* hidden;        /* [T, E]                                  */
  const void* w_kv_a;         /* [R + P * rope_heads, E] row-major       */
  const float* norm_weight;   /* [R], NULL: no latent norm               */
  const int32_t* positions;   /* [T]                                     */
  const int64_t* slot_mapping;/* [T]                                     */
  void* cache;                /* [num_blocks, block_size, row]           */
} lkv_mla_project_append_params;

/* ------------------------------------------------------------------------------------ */
/* Kernel 3: mla_decode_layer, the fused absorbed decode step of one layer               */

/*
 * One decode step of one MLA attention layer for B sequences x Sq new tokens (T = B * Sq
 * tokens, token t = b * Sq + s), from the layer's DeepSeek-layout weights (HF names, (out, in)
 * row-major, all in weight_dtype). Dn = qk_nope_head_dim, Dv = v_head_dim, Q = q_lora_rank.
 *
 *   q      = q_proj x                                    (Q == 0)   [H (Dn + P)]
 *          = q_b_proj RMSNorm_qa(q_a_proj x)             (Q > 0)    per head [q_nope (Dn) | q_pe (P)]
 *   q_pe   <- RoPE(q_pe, positions[t])
 *   [c ; k_rope] appended to the cache exactly as lkv_mla_project_append (kv_a_proj_with_mqa,
 *          kv_a_layernorm when kv_a_norm_weight is given, RoPE) into the row of logical token
 *          seq_lens[b] - Sq + s of sequence b (through block_table)
 *   q_latent_h = W_UK,h^T q_nope_h   (W_UK,h = kv_b_proj rows h(Dn+Dv) .. h(Dn+Dv)+Dn-1, [Dn, R])
 *   lat_h  = mla_decode(q_latent, q_pe, cache)            (the attention core, Sq-causal)
 *   o_h    = W_UV,h lat_h            (W_UV,h = kv_b_proj rows h(Dn+Dv)+Dn .. h(Dn+Dv)+Dn+Dv-1)
 *   out    = o_proj [o_1 .. o_H]                                     [E]
 *
 * seq_lens[b] counts the cached tokens including the Sq new ones (so seq_lens[b] >= Sq).
 * slot_mapping is optional: NULL derives each new token's slot from block_table and seq_lens;
 * when given, every entry must equal that derived slot (a cross-check of the caller's
 * bookkeeping). Scratch memory is allocated inside the call (about T * H * (2R + Dn + 2P + Dv)
 * floats plus T * (Q + E) floats); no workspace is needed.
 * W_UK / W_UV are applied per head, never folded into q_proj / o_proj: for R > Dn, Dv (every
 * DeepSeek and TransMLA shape) the folded matrices are R/Dn times larger and slower (see
 * native/bench/mla_layer_fold_bench.cpp). fold_absorption must be 0 (reserved).
 * A prompt chunk (q_len > 1, Dn > 0) may run the attention in mla_prefill's non-absorbed form
 * instead (K_nope and V up-projected from the cache a tile at a time, straight to o) when the
 * backend estimates it cheaper: the same result up to rounding.
 * Only the cache rows of the new tokens and out are written.
 */
typedef struct lkv_mla_decode_layer_params {
  int32_t batch;              /* B >= 1                                               */
  int32_t q_len;              /* Sq >= 1                                              */
  int32_t hidden_size;        /* E >= 1                                               */
  int32_t num_heads;          /* H >= 1                                               */
  int32_t q_lora_rank;        /* Q: 0 = full q_proj; > 0 = q_a_proj / q_b_proj        */
  int32_t qk_nope_head_dim;   /* Dn >= 0                                              */
  int32_t v_head_dim;         /* Dv >= 1                                              */
  int32_t kv_lora_rank;       /* R >= 1                                               */
  int32_t rope_dim;           /* P >= 0, even (qk_rope_head_dim)                      */
  int32_t rope_heads;         /* >= 1, divides H                                      */
  int32_t block_size;         /* 1..256                                               */
  int32_t num_blocks;
  int32_t max_blocks_per_seq;
  lkv_dtype cache_dtype;      /* any cache dtype                                      */
  lkv_dtype weight_dtype;     /* f32 or bf16, for every weight matrix                 */
  float softmax_scale;        /* required, finite: mscale^2 / sqrt(Dn + P)            */
  float norm_eps;             /* RMSNorm epsilon of both latent norms (1e-6)          */
  int32_t fold_absorption;    /* must be 0 (reserved)                                 */
  lkv_rope_params rope;       /* for q_pe and k_rope                                  */
  const float* hidden;        /* [B, Sq, E], already input-layernormed                */
  const void* w_q;            /* q_proj [H (Dn + P), E]                 (Q == 0)      */
  const void* w_q_a;          /* q_a_proj [Q, E]                        (Q > 0)       */
  const float* q_a_norm_weight; /* q_a_layernorm [Q]; NULL: no norm     (Q > 0)       */
  const void* w_q_b;          /* q_b_proj [H (Dn + P), Q]               (Q > 0)       */
  const void* w_kv_a;         /* kv_a_proj_with_mqa [R + P * rope_heads, E]           */
  const float* kv_a_norm_weight; /* kv_a_layernorm [R]; NULL: no latent norm          */
  const void* w_kv_b;         /* kv_b_proj [H (Dn + Dv), R]                           */
  const void* w_o;            /* o_proj [E, H Dv]                                     */
  const int32_t* positions;   /* [B, Sq] RoPE positions, >= 0                         */
  const int64_t* slot_mapping;/* [B, Sq] or NULL (see above)                          */
  void* cache;                /* [num_blocks, block_size, row]                        */
  const int32_t* block_table; /* [B, max_blocks_per_seq]                              */
  const int32_t* seq_lens;    /* [B], including the Sq new tokens                     */
  float* out;                 /* [B, Sq, E]; may be the same memory as hidden         */
} lkv_mla_decode_layer_params;

/* ------------------------------------------------------------------------------------ */
/* Kernel 5: gqa_decode, plain paged GQA/MHA decode (unconverted models, comparisons)    */

/*
 * The GQA cache holds, per token, K then V of every KV head:
 *   [num_blocks, block_size, 2, num_kv_heads, head_dim] in f32, f16 or bf16.
 * Query head h attends with KV head h / (H / num_kv_heads); causal and empty-sequence rules as
 * for mla_decode. out [B, Sq, H, D], lse [B, H, Sq] (natural log, may be NULL).
 */
typedef struct lkv_gqa_decode_params {
  int32_t batch;              /* B >= 1                                   */
  int32_t q_len;              /* Sq >= 1                                  */
  int32_t num_heads;          /* H >= 1                                   */
  int32_t num_kv_heads;       /* >= 1, divides H                          */
  int32_t head_dim;           /* D >= 1                                   */
  int32_t block_size;         /* 1..256                                   */
  int32_t num_blocks;
  int32_t max_blocks_per_seq;
  lkv_dtype cache_dtype;      /* f32, f16 or bf16                         */
  float softmax_scale;        /* required, finite                         */
  const float* q;             /* [B, Sq, H, D], RoPE already applied      */
  const void* cache;          /* see above                                */
  const int32_t* block_table; /* [B, max_blocks_per_seq]                  */
  const int32_t* seq_lens;    /* [B]                                      */
  float* out;                 /* [B, Sq, H, D]                            */
  float* lse;                 /* [B, H, Sq], may be NULL                  */
} lkv_gqa_decode_params;

/* Writes K and V of T tokens (RoPE already applied to K) into their cache slots. */
typedef struct lkv_gqa_append_params {
  int32_t num_tokens;          /* T >= 0                                  */
  int32_t num_kv_heads;
  int32_t head_dim;
  int32_t block_size;
  int32_t num_blocks;
  lkv_dtype cache_dtype;       /* f32, f16 or bf16                        */
  const float* k;              /* [T, num_kv_heads, head_dim]             */
  const float* v;              /* [T, num_kv_heads, head_dim]             */
  const int64_t* slot_mapping; /* [T], negative skips                     */
  void* cache;
} lkv_gqa_append_params;

/* ------------------------------------------------------------------------------------ */
/* Kernel 4: mla_prefill, the non-absorbed attention of a prompt chunk                  */

/*
 * The last T cached tokens of each sequence are new (append them first); new token t
 * (0..T-1) of sequence b sits at position seq_lens[b] - T + t and sees the cached tokens
 * j < seq_lens[b] - T + 1 + t. For head h (rope group g = h / (H / rope_heads)):
 *   k_nope_j = W_UK,h c_j, v_j = W_UV,h c_j (W_UK,h, W_UV,h: the head's rows of kv_b_proj)
 *   score_j  = softmax_scale * (q_nope . k_nope_j + q_rope . k_rope_{j, g})
 *   out      = sum_j softmax(score)_j v_j   [Dv], lse = log(sum_j exp(score_j)).
 * Two forms compute it (params.form): the absorbed one, mla_decode with Sq = T on the query
 * W_UK,h^T q_nope followed by W_UV,h (its precision is mla_decode's), and the non-absorbed one,
 * K_nope and V up-projected from the latent rows a tile of tokens at a time (never for the
 * whole context at once; f32 arithmetic), whose cost per query falls as T grows. A query that
 * sees no token gets out = 0 and lse = -inf.
 */
typedef enum lkv_prefill_form {
  LKV_PREFILL_AUTO = 0,         /* the backend picks the cheaper form for the shape      */
  LKV_PREFILL_ABSORBED = 1,     /* W_UK into the query, mla_decode with Sq = T, then W_UV */
  LKV_PREFILL_NON_ABSORBED = 2, /* K_nope and V up-projected a tile of tokens at a time  */
  LKV_PREFILL_FORM_RANGE_ = 0x7fffffff
} lkv_prefill_form;

typedef struct lkv_mla_prefill_params {
  int32_t batch;              /* B >= 1                                             */
  int32_t q_len;              /* T >= 1 new tokens per sequence                     */
  int32_t num_heads;          /* H >= 1                                             */
  int32_t kv_lora_rank;       /* R >= 1                                             */
  int32_t rope_dim;           /* P >= 0, even                                       */
  int32_t rope_heads;         /* >= 1, divides H                                    */
  int32_t qk_nope_head_dim;   /* Dn >= 1                                            */
  int32_t v_head_dim;         /* Dv >= 1                                            */
  int32_t block_size;         /* tokens per page, 1..256                            */
  int32_t num_blocks;
  int32_t max_blocks_per_seq;
  lkv_dtype cache_dtype;
  lkv_dtype weight_dtype;     /* f32 or bf16                                        */
  float softmax_scale;        /* required, finite: mscale^2 / sqrt(Dn + P)          */
  lkv_prefill_form form;      /* the same result either way, up to rounding         */
  const float* q_nope;        /* [B, T, H, Dn]                                      */
  const float* q_rope;        /* [B, T, H, P], RoPE applied; NULL when P == 0       */
  const void* w_kv_b;         /* kv_b_proj [H (Dn + Dv), R]: per head Dn rows of    */
                              /* W_UK, then Dv rows of W_UV                         */
  const void* cache;          /* [num_blocks, block_size, row] see lkv_cache_layout */
  const int32_t* block_table; /* [B, max_blocks_per_seq]                            */
  const int32_t* seq_lens;    /* [B], 0 <= len <= max_blocks_per_seq * block_size   */
  float* out;                 /* [B, T, H, Dv]                                      */
  float* lse;                 /* [B, H, T], may be NULL                             */
} lkv_mla_prefill_params;

/* ------------------------------------------------------------------------------------ */
/* Kernel 8: gemm, dense projections for calibration forwards and the model runtime      */

/*
 * C[m, n] = sum_k A[m, k] W[n, k] (+ bias[n]) (+ C[m, n] when accumulate), i.e. C = A W^T with
 * W row-major [N, K] (PyTorch nn.Linear / Hugging Face layout). A and C are f32; W is f32 or
 * bf16 (weight_dtype; bf16 is widened exactly, all products and sums are f32). Threads split
 * over N, so W is read once per call for all M rows. M = 0 is a no-op. C must not overlap A,
 * W or bias. Host memory only.
 */
typedef struct lkv_gemm_params {
  int32_t m;              /* M >= 0, rows of A and C                              */
  int32_t n;              /* N >= 1, rows of W, columns of C                      */
  int32_t k;              /* K >= 1, columns of A and W                           */
  lkv_dtype weight_dtype; /* f32 or bf16                                          */
  int32_t accumulate;     /* 0: C = A W^T (+ bias); 1: C += A W^T (+ bias)        */
  const float* a;         /* [M, K]                                               */
  const void* w;          /* [N, K] row-major                                     */
  const float* bias;      /* [N] or NULL                                          */
  float* c;               /* [M, N]                                               */
} lkv_gemm_params;

/* ------------------------------------------------------------------------------------ */
/* Backends                                                                              */

typedef enum lkv_cpu_isa {
  LKV_CPU_ISA_AUTO = -1, /* best the CPU and OS support                 */
  LKV_CPU_ISA_SCALAR = 0,
  LKV_CPU_ISA_AVX2 = 1,      /* AVX2 + FMA + F16C                          */
  LKV_CPU_ISA_AVX512 = 2,    /* AVX-512 F/BW/VL/DQ                         */
  LKV_CPU_ISA_AVX512BF16 = 3,/* AVX-512 with vdpbf16ps                     */
  LKV_CPU_ISA_NEON = 4,
  LKV_CPU_ISA_RANGE_ = 0x7fffffff
} lkv_cpu_isa;

const char* lkv_cpu_isa_name(lkv_cpu_isa isa);

typedef struct lkv_backend_options {
  lkv_cpu_isa cpu_isa; /* a cap: the best compiled and supported ISA at or below it */
  int32_t num_threads; /* 0: one per hardware thread                                  */
} lkv_backend_options;

typedef struct lkv_backend_info {
  const char* name;              /* "cpu", "cuda", "cann"                          */
  lkv_cpu_isa cpu_isa;           /* the ISA the kernels run with                    */
  uint32_t compiled_isa_mask;    /* bit (1 << isa) per ISA compiled into the binary */
  uint32_t supported_isa_mask;   /* ... and supported by this CPU and OS            */
  int32_t num_threads;
  int32_t api_version;
  const char* version;           /* "0.1.0"                                        */
} lkv_backend_info;

typedef struct lkv_backend lkv_backend; /* opaque */

/*
 * One backend is one table of entry points. Entries marked optional may be NULL; the
 * dispatcher then reports LKV_ERR_UNSUPPORTED.
 */
typedef struct lkv_backend_vtable {
  int32_t api_version; /* LKV_API_VERSION the table was built against */
  const char* name;
  lkv_status (*get_info)(void* ctx, lkv_backend_info* out);
  lkv_status (*mla_decode)(void* ctx, const lkv_mla_decode_params* p, lkv_error* err);
  lkv_status (*mla_project_append)(void* ctx, const lkv_mla_project_append_params* p,
                                   lkv_error* err);
  lkv_status (*gqa_decode)(void* ctx, const lkv_gqa_decode_params* p, lkv_error* err);
  lkv_status (*gqa_append)(void* ctx, const lkv_gqa_append_params* p, lkv_error* err);
  lkv_status (*mla_decode_layer)(void* ctx, const lkv_mla_decode_layer_params* p,
                                 lkv_error* err); /* optional */
  lkv_status (*synchronize)(void* ctx, lkv_error* err); /* optional */
  void (*destroy)(void* ctx);
  lkv_status (*gemm)(void* ctx, const lkv_gemm_params* p, lkv_error* err); /* optional */
  lkv_status (*mla_prefill)(void* ctx, const lkv_mla_prefill_params* p,
                            lkv_error* err); /* optional */
} lkv_backend_vtable;

/* name: "cpu" (others when compiled in). options may be NULL for defaults. */
lkv_status lkv_backend_create(const char* name, const lkv_backend_options* options,
                              lkv_backend** out, lkv_error* err);
void lkv_backend_free(lkv_backend* backend);
lkv_status lkv_backend_get_info(const lkv_backend* backend, lkv_backend_info* out);

/* Validates p against the contract above, then runs it on the backend. */
lkv_status lkv_mla_decode(lkv_backend* backend, const lkv_mla_decode_params* p, lkv_error* err);
lkv_status lkv_mla_project_append(lkv_backend* backend, const lkv_mla_project_append_params* p,
                                  lkv_error* err);

/* Validates p (including the block table), then runs it on the backend (LKV_ERR_UNSUPPORTED
 * when its table has no mla_prefill: the cuda backend so far). */
lkv_status lkv_mla_prefill(lkv_backend* backend, const lkv_mla_prefill_params* p, lkv_error* err);

/* Validates p (including the block table and slot mapping) before anything is written. */
lkv_status lkv_mla_decode_layer(lkv_backend* backend, const lkv_mla_decode_layer_params* p,
                                lkv_error* err);

lkv_status lkv_gqa_decode(lkv_backend* backend, const lkv_gqa_decode_params* p, lkv_error* err);

/* Validates p, then runs C = A W^T (+ bias) on the backend (LKV_ERR_UNSUPPORTED when its table
 * has no gemm: device-memory backends so far). */
lkv_status lkv_gemm(lkv_backend* backend, const lkv_gemm_params* p, lkv_error* err);
lkv_status lkv_gqa_append(lkv_backend* backend, const lkv_gqa_append_params* p, lkv_error* err);

/* What the running CPU and OS support, as a bit mask of (1 << lkv_cpu_isa). */
uint32_t lkv_cpu_supported_isa_mask(void);
/* ISAs compiled into this binary. */
uint32_t lkv_cpu_compiled_isa_mask(void);

/* The machine's ceilings, measured now with `threads` threads (0: all); quick: ~0.5 s instead of ~2 s. */
typedef struct lkv_cpu_ceilings {
  double read_gbs;        /* memory read bandwidth, GB/s                 */
  double f32_fma_gflops;  /* f32 FMA peak, GFLOP/s (0 without AVX2)      */
  double bf16_dot_gflops; /* bf16 dot-product peak, GFLOP/s (0 without)  */
  int32_t threads;
} lkv_cpu_ceilings;

lkv_status lkv_cpu_measure_ceilings(int32_t threads, int32_t quick, lkv_cpu_ceilings* out,
                                    lkv_error* err);

/* ------------------------------------------------------------------------------------ */
/* Kernel 7: mtla_merge_append, MTLA temporal compression of the latent cache (stride s)  */

/*
 * MTLA (research/mla-methods.md section 5) keeps one cache row per chunk of s tokens. For each
 * token t, in order (n = token_index[t], its 0-based index in its sequence; chunk j = n / s):
 *   c_hat = LayerNorm(latent_t) * norm_weight + norm_bias   (no norm when norm_weight is NULL)
 *   pe_j[2k] = sin(j * 10000^(-2k/R)), pe_j[2k+1] = cos(j * 10000^(-2k/R))
 *   w_t = sigmoid( (W_fc_c pe_j + b_fc_c) . (W_fc_p c_hat + b_fc_p) )    (a scalar)
 *   row = slot_mapping[t]:  c(row) = w_t c_hat            when n % s == 0 (opens chunk j)
 *                           c(row) = c(row) + w_t c_hat   otherwise (merges into the open chunk)
 *                           k_rope(row) = k_rope_t        always (the newest rope key wins)
 * Accumulation is in double; an open row of a 16-bit or quantized cache is re-rounded after
 * each merge (f32 caches keep the exact f32 running sum). The merged cache is read by
 * lkv_mla_decode as is, with seq_lens = ceil(tokens / s). Tokens that share a slot in one call
 * must be of the same chunk, in increasing n; a negative slot skips the token. All weights f32.
 * backend may be NULL: the kernel runs on the calling thread over host memory.
 */
typedef struct lkv_mtla_merge_append_params {
  int32_t num_tokens;         /* T >= 0                                               */
  int32_t kv_lora_rank;       /* R >= 2, even (the chunk PE pairs sin/cos)            */
  int32_t rope_dim;           /* P >= 0, even                                         */
  int32_t rope_heads;         /* >= 1                                                 */
  int32_t hyper_dim;          /* D >= 1, rows of fc_c and fc_p (R / 4 in MTLA)        */
  int32_t stride;             /* s >= 1                                               */
  int32_t block_size;         /* 1..256                                               */
  int32_t num_blocks;
  lkv_dtype cache_dtype;      /* any cache dtype                                      */
  float norm_eps;             /* LayerNorm epsilon (PyTorch default 1e-5), >= 0       */
  const float* latent;        /* [T, R] latent before the LayerNorm                   */
  const float* k_rope;        /* [T, P * rope_heads] rope keys, RoPE applied; NULL if P = 0 */
  const float* norm_weight;   /* [R] LayerNorm gamma; NULL: latent is used as is      */
  const float* norm_bias;     /* [R] LayerNorm beta; NULL: zero                       */
  const float* w_fc_c;        /* [D, R]                                               */
  const float* b_fc_c;        /* [D], NULL: zero                                      */
  const float* w_fc_p;        /* [D, R]                                               */
  const float* b_fc_p;        /* [D], NULL: zero                                      */
  const int32_t* token_index; /* [T] 0-based index of each token in its sequence      */
  const int64_t* slot_mapping;/* [T] slot of the token's chunk (page * block_size + offset) */
  void* cache;                /* [num_blocks, block_size, row]                        */
  float* merge_weight;        /* [T] out: w_t (0 for skipped tokens); may be NULL      */
} lkv_mtla_merge_append_params;

/* Validates p (slots, chunk order) before anything is written, then merges. */
lkv_status lkv_mtla_merge_append(lkv_backend* backend, const lkv_mtla_merge_append_params* p,
                                 lkv_error* err);

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* LATENTKV_H_ */
