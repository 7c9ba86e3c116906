// LiMuSE's GC-TCN blocks for fp32 inference on one CPU thread, fused over tiles of frames.
//
// torch runs each layer over the whole sequence, so TAC's hidden tensor (K x 3H/K x T, 110 MB
// a fusion block at K=32 and 3 s) goes through memory several times, and its skinny matmuls
// (12 or 4 channels in) run at a quarter of the CPU's peak. Here each tile of frames goes
// through TAC's three linears while its hidden values are in cache, every 1x1 layer is one
// register-blocked loop with its bias, residual and PReLU applied before the store, and the
// conv block's last gLN is folded into the projection's weights. Only the norms' statistics
// (each row over the whole sequence) need a second pass.
//
// Layout as in avtool/models/limuse.py: a batch item is K rows of [width, T], time contiguous.
// Compiled at first use with -march=native (avtool/core/native.py); GCC's vector extensions
// give 16-lane vectors on AVX-512 and 8 on AVX2 from the same source.

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <thread>
#include <vector>

// A register block is kRowBlock output channels x kVectorsPerTile vectors of frames: 32
// accumulators on AVX-512's 32 registers (a fusion TAC 21 ms against 26 with 16), 12 on AVX2's
// 16 (RTF 0.100 against 0.105 with 8 and 0.113 with 12 as 2 x 6; AVX2 code on an AVX-512 CPU).
#if defined(__AVX512F__)
constexpr int kLanes = 16, kVectorsPerTile = 4, kRowBlock = 8;
#elif defined(__AVX__)
constexpr int kLanes = 8, kVectorsPerTile = 3, kRowBlock = 4;
#else
constexpr int kLanes = 4, kVectorsPerTile = 2, kRowBlock = 4;
#endif
constexpr int kTile = kLanes * kVectorsPerTile;  // frames a tile
constexpr int kMaxTaps = 16;                      // MAX_DEPTHWISE_TAPS in limuse_fused.py

typedef float vf __attribute__((vector_size(kLanes * sizeof(float)), aligned(4)));

static inline vf load(const float *p) { return *reinterpret_cast<const vf *>(p); }
static inline void store(float *p, vf v) { *reinterpret_cast<vf *>(p) = v; }
static inline vf splat(float a) { return vf{} + a; }
static inline vf prelu(vf x, float slope) { return x > 0 ? x : x * slope; }

struct Epilogue {
    const float *bias;    // per output row, or null
    const float *addend;  // [rows, ld_addend] added before the activation, or null
    int ld_addend;
    bool activation;      // PReLU with `slope`
    float slope;
    float *total = nullptr;  // [rows, ld_out] the outputs are also added to, or null
    double *sum = nullptr;   // the outputs' sum and sum of squares are added to these, or null
    double *squares = nullptr;
};

static inline float horizontal_sum(vf v) {
    float s = 0.f;
    for (int l = 0; l < kLanes; ++l) s += v[l];
    return s;
}

// out[r, 0:kTile] = act(sum_i w[r, i] in[i, 0:kTile] + bias[r] + addend[r, :]) for R rows.
template <int R>
static inline void rows_of_tile(const float *w, int ld_w, int depth, const float *in, int ld_in,
                                float *out, int ld_out, const Epilogue &e, int row) {
    vf acc[R][kVectorsPerTile];
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r)
#pragma GCC unroll 8
        for (int v = 0; v < kVectorsPerTile; ++v) acc[r][v] = splat(e.bias ? e.bias[row + r] : 0.f);
    for (int i = 0; i < depth; ++i) {
        vf x[kVectorsPerTile];
#pragma GCC unroll 8
        for (int v = 0; v < kVectorsPerTile; ++v) x[v] = load(in + i * ld_in + v * kLanes);
#pragma GCC unroll 8
        for (int r = 0; r < R; ++r) {
            const vf weight = splat(w[r * ld_w + i]);
#pragma GCC unroll 8
            for (int v = 0; v < kVectorsPerTile; ++v) acc[r][v] += weight * x[v];
        }
    }
    vf sum{}, squares{};
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r)
#pragma GCC unroll 8
        for (int v = 0; v < kVectorsPerTile; ++v) {
            vf y = acc[r][v];
            if (e.addend) y += load(e.addend + (row + r) * e.ld_addend + v * kLanes);
            if (e.activation) y = prelu(y, e.slope);
            store(out + r * ld_out + v * kLanes, y);
            if (e.total) {
                float *total = e.total + (row + r) * ld_out + v * kLanes;
                store(total, load(total) + y);
            }
            sum += y;
            squares += y * y;
        }
    if (e.sum) {
        *e.sum += horizontal_sum(sum);
        *e.squares += horizontal_sum(squares);
    }
}

// out = act(w . in + bias + addend) on one tile: `rows` x `depth` weights (row stride ld_w),
// reading `count` <= kTile columns of `in` (zeros after them) and writing `count` of `out`.
static void tile_matmul(int rows, int depth, const float *w, int ld_w, const float *in, int ld_in,
                        Epilogue e, float *out, int ld_out, int count,
                        std::vector<float> &staging) {
    if (count < kTile) {  // the sequence's last, partial tile: through zero-padded copies
        staging.assign(static_cast<size_t>(depth + 2 * rows) * kTile, 0.f);
        float *in_pad = staging.data(), *add_pad = in_pad + depth * kTile;
        float *out_pad = add_pad + rows * kTile;
        for (int i = 0; i < depth; ++i) std::memcpy(in_pad + i * kTile, in + i * ld_in, count * 4);
        if (e.addend) {
            for (int r = 0; r < rows; ++r)
                std::memcpy(add_pad + r * kTile, e.addend + r * e.ld_addend, count * 4);
            e.addend = add_pad;
            e.ld_addend = kTile;
        }
        Epilogue inner = e;
        inner.total = nullptr;
        inner.sum = inner.squares = nullptr;
        tile_matmul(rows, depth, w, ld_w, in_pad, kTile, inner, out_pad, kTile, kTile, staging);
        for (int r = 0; r < rows; ++r) {
            std::memcpy(out + r * ld_out, out_pad + r * kTile, count * 4);
            for (int t = 0; t < count; ++t) {
                const float y = out_pad[r * kTile + t];
                if (e.total) e.total[r * ld_out + t] += y;
                if (e.sum) {
                    *e.sum += y;
                    *e.squares += y * y;
                }
            }
        }
        return;
    }
    int row = 0;
    for (; row + kRowBlock <= rows; row += kRowBlock)
        rows_of_tile<kRowBlock>(w + row * ld_w, ld_w, depth, in, ld_in, out + row * ld_out, ld_out,
                                e, row);
    for (; row + 4 <= rows; row += 4)
        rows_of_tile<4>(w + row * ld_w, ld_w, depth, in, ld_in, out + row * ld_out, ld_out, e, row);
    for (; row < rows; ++row)
        rows_of_tile<1>(w + row * ld_w, ld_w, depth, in, ld_in, out + row * ld_out, ld_out, e, row);
}

// body(begin, end, part) over `threads` contiguous parts of [0, n), the caller running the
// first; a part whose thread cannot start runs on the caller.
template <class Body>
static void in_parts(int n, int threads, const Body &body) {
    threads = threads < n ? threads : n;
    std::vector<std::thread> workers;
    for (int part = 1; part < threads; ++part) {
        const int begin = static_cast<int>(static_cast<long>(n) * part / threads);
        const int end = static_cast<int>(static_cast<long>(n) * (part + 1) / threads);
        try {
            workers.emplace_back(body, begin, end, part);
        } catch (...) {
            body(begin, end, part);
        }
    }
    body(0, threads > 1 ? n / threads : n, 0);
    for (auto &worker : workers) worker.join();
}

static float inverse_std(double sum, double squares, double n, float eps, double &mean) {
    mean = sum / n;
    const double variance = squares / n - mean * mean;
    return static_cast<float>(1.0 / std::sqrt((variance > 0 ? variance : 0) + eps));
}

extern "C" {

// One TAC of one batch item: y = x + gLN(PReLU(W3 [f; g] + b3)) per row, where
// f = PReLU(W1 x + b1) per group and g = PReLU(W2 mean_groups(f) + b2); W3 is [width, 2 hidden].
int tac_forward(const float *x, float *y, int groups, int width, int hidden, int frames,
                const float *w1, const float *b1, float a1, const float *w2, const float *b2,
                float a2, const float *w3, const float *b3, float a3, const float *gamma,
                const float *beta, float eps, int threads) {
    const size_t row_size = static_cast<size_t>(width) * frames;
    const float inverse_groups = 1.f / groups;
    const int tiles = (frames + kTile - 1) / kTile;
    threads = threads < 1 ? 1 : threads;
    std::vector<double> sums(static_cast<size_t>(threads) * groups, 0.0), squares(sums);
    in_parts(tiles, threads, [=, &sums, &squares](int begin, int end, int part) {
        std::vector<float> features(static_cast<size_t>(groups) * hidden * kTile);
        std::vector<float> average(hidden * kTile), shared(hidden * kTile);
        std::vector<float> broadcast(width * kTile);
        std::vector<float> staging;
        double *part_sums = sums.data() + part * groups;
        double *part_squares = squares.data() + part * groups;
        for (int t0 = begin * kTile; t0 < end * kTile && t0 < frames; t0 += kTile) {
            const int count = frames - t0 < kTile ? frames - t0 : kTile;
            std::memset(average.data(), 0, average.size() * 4);
            for (int g = 0; g < groups; ++g) {
                float *f = features.data() + static_cast<size_t>(g) * hidden * kTile;
                Epilogue transform{b1, nullptr, 0, true, a1};
                transform.total = average.data();
                tile_matmul(hidden, width, w1, width, x + g * row_size + t0, frames, transform, f,
                            kTile, count, staging);
            }
            for (int i = 0; i < hidden * kTile; i += kLanes)
                store(average.data() + i, load(average.data() + i) * inverse_groups);
            tile_matmul(hidden, hidden, w2, hidden, average.data(), kTile,
                        {b2, nullptr, 0, true, a2}, shared.data(), kTile, kTile, staging);
            tile_matmul(width, hidden, w3 + hidden, 2 * hidden, shared.data(), kTile,
                        {nullptr, nullptr, 0, false, 0.f}, broadcast.data(), kTile, kTile, staging);
            for (int g = 0; g < groups; ++g) {
                Epilogue concat{b3, broadcast.data(), kTile, true, a3};
                concat.sum = part_sums + g;
                concat.squares = part_squares + g;
                tile_matmul(width, hidden, w3, 2 * hidden,
                            features.data() + static_cast<size_t>(g) * hidden * kTile, kTile,
                            concat, y + g * row_size + t0, frames, count, staging);
            }
        }
    });
    in_parts(groups, threads, [&](int begin, int end, int) {
        for (int g = begin; g < end; ++g) {
            double sum = 0, square_sum = 0, mean;
            for (int part = 0; part < threads; ++part) {
                sum += sums[part * groups + g];
                square_sum += squares[part * groups + g];
            }
            const float inv =
                inverse_std(sum, square_sum, static_cast<double>(row_size), eps, mean);
            for (int c = 0; c < width; ++c) {
                const float scale = gamma[c] * inv;
                const float offset = beta[c] - static_cast<float>(mean) * scale;
                const float *in = x + g * row_size + c * frames;
                float *out = y + g * row_size + c * frames;
                for (int t = 0; t < frames; ++t) out[t] = in[t] + out[t] * scale + offset;
            }
        }
    });
    return 0;
}

// The depthwise-separable conv block on `rows` rows of [width, T]: y = x + W_p gLN(PReLU(
// depthwise(gLN(PReLU(W_e x + b_e))))) + b_p, the depthwise conv `kernel` taps wide, dilated,
// zero-padded to keep T frames. Rows are normalised on their own, as GroupNorm(1, C) does on
// the [B*K, C, T] layout.
int conv_block_forward(const float *x, float *y, int rows, int width, int hidden, int frames,
                       int kernel, int dilation, const float *we, const float *be, float ae,
                       const float *ge, const float *bte, const float *wd, const float *bd,
                       float ad, const float *gd, const float *btd, const float *wp,
                       const float *bp, float eps, int threads) {
    if (kernel > kMaxTaps) return -1;
    const int padded = (frames + kTile - 1) / kTile * kTile;
    const int centre = (kernel - 1) / 2;
    const size_t row_size = static_cast<size_t>(width) * frames;
    const double count_all = static_cast<double>(hidden) * frames;
    in_parts(rows, threads < 1 ? 1 : threads, [&](int first_row, int end_row, int) {
        std::vector<float> expanded(static_cast<size_t>(hidden) * padded);
        std::vector<float> depthwise(static_cast<size_t>(hidden) * padded);
        std::vector<float> projection(static_cast<size_t>(width) * hidden), bias(width), staging;
        for (int row = first_row; row < end_row; ++row) {
            const float *in = x + row * row_size;
            double sum = 0, squares = 0, mean;
            for (int t0 = 0; t0 < frames; t0 += kTile) {
                Epilogue expand{be, nullptr, 0, true, ae};
                expand.sum = &sum;
                expand.squares = &squares;
                tile_matmul(hidden, width, we, width, in + t0, frames, expand, expanded.data() + t0,
                            padded, frames - t0 < kTile ? frames - t0 : kTile, staging);
            }
            const float inv = inverse_std(sum, squares, count_all, eps, mean);
            sum = squares = 0;
            // The depthwise conv of the normalised u (s u + o, zero-padded) on raw u: taps
            // scaled by s, bias plus o times the taps in range (all of them away from the ends).
            for (int c = 0; c < hidden; ++c) {
                const float scale = ge[c] * inv, offset = bte[c] - static_cast<float>(mean) * scale;
                const float *u = expanded.data() + static_cast<size_t>(c) * padded;
                float *v = depthwise.data() + static_cast<size_t>(c) * padded;
                float taps[kMaxTaps], tap_total = 0.f;
                for (int k = 0; k < kernel; ++k) {
                    taps[k] = wd[c * kernel + k] * scale;
                    tap_total += wd[c * kernel + k];
                }
                const float inner_bias = bd[c] + offset * tap_total;
                const int first = centre * dilation;
                const int last = frames - (kernel - 1 - centre) * dilation;
                auto at = [&](int t) {  // one frame, with the zero padding
                    float value = bd[c];
                    for (int k = 0; k < kernel; ++k) {
                        const int source = t + (k - centre) * dilation;
                        if (source >= 0 && source < frames)
                            value += wd[c * kernel + k] * (u[source] * scale + offset);
                    }
                    value = value > 0 ? value : value * ad;
                    v[t] = value;
                    sum += value;
                    squares += value * value;
                };
                int t = 0;
                for (; t < first && t < frames; ++t) at(t);
                vf vector_sum{}, vector_squares{};
                for (; t + kLanes <= last; t += kLanes) {
                    vf acc = splat(inner_bias);
                    for (int k = 0; k < kernel; ++k)
                        acc += taps[k] * load(u + t + (k - centre) * dilation);
                    acc = prelu(acc, ad);
                    store(v + t, acc);
                    vector_sum += acc;
                    vector_squares += acc * acc;
                }
                sum += horizontal_sum(vector_sum);
                squares += horizontal_sum(vector_squares);
                for (; t < frames; ++t) at(t);
            }
            const float inv2 = inverse_std(sum, squares, count_all, eps, mean);
            // gLN folded into the projection: W_p (s v + o) + b_p = (W_p s) v + (W_p o + b_p).
            for (int o = 0; o < width; ++o) {
                double shift = bp[o];
                for (int c = 0; c < hidden; ++c) {
                    const float scale = gd[c] * inv2;
                    projection[o * hidden + c] = wp[o * hidden + c] * scale;
                    shift += static_cast<double>(wp[o * hidden + c]) *
                             (btd[c] - static_cast<float>(mean) * scale);
                }
                bias[o] = static_cast<float>(shift);
            }
            for (int t0 = 0; t0 < frames; t0 += kTile) {
                const int count = frames - t0 < kTile ? frames - t0 : kTile;
                tile_matmul(width, hidden, projection.data(), hidden, depthwise.data() + t0, padded,
                            {bias.data(), in + t0, frames, false, 0.f}, y + row * row_size + t0,
                            frames, count, staging);
            }
        }
    });
    return 0;
}

}  // extern "C"
