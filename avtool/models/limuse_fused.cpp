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

#include <algorithm>
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

// Running per-row minimum and maximum of `count` columns of a [rows, ld] block.
static void track_rows(const float *p, int rows, int ld, int count, float *lows, float *highs) {
    for (int r = 0; r < rows; ++r) {
        const float *row = p + static_cast<size_t>(r) * ld;
        float low = lows[r], high = highs[r];
        int t = 0;
        if (count >= kLanes) {
            vf vector_low = load(row), vector_high = vector_low;
            for (; t + kLanes <= count; t += kLanes) {
                const vf v = load(row + t);
                vector_low = v < vector_low ? v : vector_low;
                vector_high = v > vector_high ? v : vector_high;
            }
            for (int l = 0; l < kLanes; ++l) {
                low = vector_low[l] < low ? vector_low[l] : low;
                high = vector_high[l] > high ? vector_high[l] : high;
            }
        }
        for (; t < count; ++t) {
            low = row[t] < low ? row[t] : low;
            high = row[t] > high ? row[t] : high;
        }
        lows[r] = low;
        highs[r] = high;
    }
}

// LiMuSE's min-max activation grid (avtool/quant/activations.py): Q(v) = round((v - low) /
// step) * step + low, step = max(high - low, 1e-12) / levels, rounding half to even.
struct Grid {
    float low, step;
    Grid(float low_, float high, int levels) : low(low_) {
        const float span = high - low_;
        step = (span > 1e-12f ? span : 1e-12f) / static_cast<float>(levels);
    }
};

static inline vf quantize(vf v, const Grid &grid) {
    constexpr float kRoundHalfEven = 12582912.f;  // 1.5 * 2^23: adding it rounds to an integer
    vf q = (v - grid.low) / grid.step;
    q = (q + kRoundHalfEven) - kRoundHalfEven;
    return q * grid.step + grid.low;
}

// Quantizes `count` columns of each of `rows` rows of [rows, ld] in place, after the affine map
// v * scale[r] + offset[r] when given (a norm).
static void quantize_rows(float *p, int rows, int ld, int count, const Grid &grid,
                          const float *scale = nullptr, const float *offset = nullptr) {
    for (int r = 0; r < rows; ++r) {
        float *row = p + static_cast<size_t>(r) * ld;
        const float a = scale ? scale[r] : 1.f, b = offset ? offset[r] : 0.f;
        int t = 0;
        for (; t + kLanes <= count; t += kLanes) {
            const vf v = scale ? load(row + t) * a + b : load(row + t);
            store(row + t, quantize(v, grid));
        }
        for (; t < count; ++t) {
            vf v = splat(scale ? row[t] * a + b : row[t]);
            row[t] = quantize(v, grid)[0];
        }
    }
}

// The quantized copy of one tile ([rows, kTile]) of a [rows, ld] block.
static void quantized_tile(float *tile, const float *source, int rows, int ld, const Grid &grid) {
    for (int r = 0; r < rows; ++r)
        std::memcpy(tile + r * kTile, source + static_cast<size_t>(r) * ld, kTile * 4);
    quantize_rows(tile, rows, kTile, kTile, grid);
}

static float inverse_std(double sum, double squares, double n, float eps, double &mean) {
    mean = sum / n;
    const double variance = squares / n - mean * mean;
    return static_cast<float>(1.0 / std::sqrt((variance > 0 ? variance : 0) + eps));
}

// y = x + gLN(y) for `rows` rows of [width, T], each with its own statistics: the sums of
// row r over the tiles are sums[tile * rows + r] (and squares likewise), added in tile order
// so that the result does not depend on how many threads computed them.
static void normalise_with_residual(const float *x, float *y, int rows, int width, int frames,
                                    const std::vector<double> &sums,
                                    const std::vector<double> &squares, int threads,
                                    const float *gamma, const float *beta, float eps) {
    const size_t row_size = static_cast<size_t>(width) * frames;
    const int tiles = static_cast<int>(sums.size()) / rows;
    in_parts(rows, threads, [&](int begin, int end, int) {
        for (int g = begin; g < end; ++g) {
            double sum = 0, square_sum = 0, mean;
            for (int tile = 0; tile < tiles; ++tile) {
                sum += sums[tile * rows + g];
                square_sum += squares[tile * rows + g];
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
    std::vector<double> sums(static_cast<size_t>(tiles) * groups, 0.0), squares(sums);
    in_parts(tiles, threads, [=, &sums, &squares](int begin, int end, int) {
        std::vector<float> features(static_cast<size_t>(groups) * hidden * kTile);
        std::vector<float> average(hidden * kTile), shared(hidden * kTile);
        std::vector<float> broadcast(width * kTile);
        std::vector<float> staging;
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
                concat.sum = &sums[t0 / kTile * groups + g];
                concat.squares = &squares[t0 / kTile * groups + g];
                tile_matmul(width, hidden, w3, 2 * hidden,
                            features.data() + static_cast<size_t>(g) * hidden * kTile, kTile,
                            concat, y + g * row_size + t0, frames, count, staging);
            }
        }
    });
    normalise_with_residual(x, y, groups, width, frames, sums, squares, threads, gamma, beta, eps);
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

// Per-part running ranges of `width` channels, reduced to one range at the end.
struct Ranges {
    std::vector<float> lows, highs;
    int width;
    Ranges(int parts, int width_) : lows(static_cast<size_t>(parts) * width_, INFINITY),
                                    highs(lows.size(), -INFINITY), width(width_) {}
    float *low(int part) { return lows.data() + static_cast<size_t>(part) * width; }
    float *high(int part) { return highs.data() + static_cast<size_t>(part) * width; }
    float min() const { return *std::min_element(lows.begin(), lows.end()); }
    float max() const { return *std::max_element(highs.begin(), highs.end()); }
};

// TAC with `levels`-level min-max grids at its three linears' inputs (LiMuSE's 8-bit
// activations), on all `items` batch items at once: each grid spans the whole batch, as in
// torch's path. `xq` is the transform's input already quantized, `x` what the residual adds.
// Three passes over the tiles: the group means and their range; the averaged branch g and its
// range; the transform again (cheaper than keeping its K x 3H/K x T output), quantized with g
// on their joint grid, into the concat linear.
int tac_forward_quantized(const float *x, const float *xq, float *y, int items, int groups,
                          int width, int hidden, int frames, const float *w1, const float *b1,
                          float a1, const float *w2, const float *b2, float a2, const float *w3,
                          const float *b3, float a3, const float *gamma, const float *beta,
                          float eps, int levels, int threads) {
    const size_t row_size = static_cast<size_t>(width) * frames, item_size = row_size * groups;
    const int tiles = (frames + kTile - 1) / kTile, padded = tiles * kTile, jobs = items * tiles;
    threads = threads < 1 ? 1 : (threads < jobs ? threads : jobs);
    std::vector<float> means(static_cast<size_t>(items) * hidden * padded), shared(means.size());
    Ranges transform_range(threads, hidden), mean_range(threads, hidden), g_range(threads, hidden);
    in_parts(jobs, threads, [&](int begin, int end, int part) {
        std::vector<float> f(hidden * kTile), total(hidden * kTile), staging;
        for (int job = begin; job < end; ++job) {
            const int item = job / tiles, t0 = job % tiles * kTile;
            const int count = frames - t0 < kTile ? frames - t0 : kTile;
            std::fill(total.begin(), total.end(), 0.f);
            for (int g = 0; g < groups; ++g) {
                Epilogue transform{b1, nullptr, 0, true, a1};
                transform.total = total.data();
                tile_matmul(hidden, width, w1, width, xq + item * item_size + g * row_size + t0,
                            frames, transform, f.data(), kTile, count, staging);
                track_rows(f.data(), hidden, kTile, count, transform_range.low(part),
                           transform_range.high(part));
            }
            float *mean = means.data() + static_cast<size_t>(item) * hidden * padded + t0;
            for (int c = 0; c < hidden; ++c)
                for (int t = 0; t < kTile; t += kLanes)
                    store(mean + c * padded + t,
                          load(total.data() + c * kTile + t) / static_cast<float>(groups));
            track_rows(mean, hidden, padded, count, mean_range.low(part), mean_range.high(part));
        }
    });
    const Grid mean_grid(mean_range.min(), mean_range.max(), levels);
    in_parts(jobs, threads, [&](int begin, int end, int part) {
        std::vector<float> quantized(hidden * kTile), staging;
        for (int job = begin; job < end; ++job) {
            const int item = job / tiles, t0 = job % tiles * kTile;
            const int count = frames - t0 < kTile ? frames - t0 : kTile;
            const size_t at = static_cast<size_t>(item) * hidden * padded + t0;
            quantized_tile(quantized.data(), means.data() + at, hidden, padded, mean_grid);
            tile_matmul(hidden, hidden, w2, hidden, quantized.data(), kTile,
                        {b2, nullptr, 0, true, a2}, shared.data() + at, padded, kTile, staging);
            track_rows(shared.data() + at, hidden, padded, count, g_range.low(part),
                       g_range.high(part));
        }
    });
    const Grid joint(std::min(transform_range.min(), g_range.min()),
                     std::max(transform_range.max(), g_range.max()), levels);
    std::vector<double> sums(static_cast<size_t>(tiles) * items * groups, 0.0), squares(sums);
    in_parts(jobs, threads, [&](int begin, int end, int) {
        std::vector<float> f(hidden * kTile), g(hidden * kTile), broadcast(width * kTile), staging;
        for (int job = begin; job < end; ++job) {
            const int item = job / tiles, t0 = job % tiles * kTile;
            const int count = frames - t0 < kTile ? frames - t0 : kTile;
            const size_t at = static_cast<size_t>(item) * hidden * padded + t0;
            quantized_tile(g.data(), shared.data() + at, hidden, padded, joint);
            tile_matmul(width, hidden, w3 + hidden, 2 * hidden, g.data(), kTile,
                        {nullptr, nullptr, 0, false, 0.f}, broadcast.data(), kTile, kTile, staging);
            for (int group = 0; group < groups; ++group) {
                const size_t row = item * item_size + group * row_size + t0;
                tile_matmul(hidden, width, w1, width, xq + row, frames, {b1, nullptr, 0, true, a1},
                            f.data(), kTile, count, staging);
                quantize_rows(f.data(), hidden, kTile, kTile, joint);
                Epilogue concat{b3, broadcast.data(), kTile, true, a3};
                const size_t statistic = static_cast<size_t>(job % tiles) * items * groups +
                                         item * groups + group;
                concat.sum = &sums[statistic];
                concat.squares = &squares[statistic];
                tile_matmul(width, hidden, w3, 2 * hidden, f.data(), kTile, concat, y + row, frames,
                            count, staging);
            }
        }
    });
    normalise_with_residual(x, y, items * groups, width, frames, sums, squares, threads, gamma,
                            beta, eps);
    return 0;
}

// The conv block with `levels`-level min-max grids at its three layers' inputs, each spanning
// all `rows` rows (torch's path quantizes the whole [B*K, C, T] tensor), so the rows go through
// each layer together: expand (input `xq`, already quantized), the norm's range, quantize and
// depthwise, the second norm's range, quantize and project. Zero padding is added after
// quantization, as the padded convolution does.
int conv_block_forward_quantized(const float *x, const float *xq, float *y, int rows, int width,
                                 int hidden, int frames, int kernel, int dilation, const float *we,
                                 const float *be, float ae, const float *ge, const float *bte,
                                 const float *wd, const float *bd, float ad, const float *gd,
                                 const float *btd, const float *wp, const float *bp, float eps,
                                 int levels, int threads) {
    if (kernel > kMaxTaps) return -1;
    const int padded = (frames + kTile - 1) / kTile * kTile;
    const int centre = (kernel - 1) / 2, halo = centre * dilation;
    const int ld_u = halo + padded + (kernel - 1 - centre) * dilation + kLanes;
    const size_t row_size = static_cast<size_t>(width) * frames;
    const size_t u_size = static_cast<size_t>(hidden) * ld_u, v_size = size_t(hidden) * padded;
    const double count_all = static_cast<double>(hidden) * frames;
    threads = threads < 1 ? 1 : threads;
    std::vector<float> expanded(u_size * rows, 0.f), depthwise(v_size * rows);
    std::vector<float> lows(static_cast<size_t>(rows) * hidden), highs(lows.size());
    std::vector<float> scales(lows.size()), offsets(lows.size());
    std::vector<double> sums(rows), squares(rows);
    // The grid of the normalised rows (v * scale + offset per channel) from each channel's range.
    auto normalised_grid = [&](const float *norm_gamma, const float *norm_beta) {
        float low = INFINITY, high = -INFINITY;
        for (int row = 0; row < rows; ++row) {
            double mean;
            const float inv = inverse_std(sums[row], squares[row], count_all, eps, mean);
            for (int c = 0; c < hidden; ++c) {
                const size_t i = static_cast<size_t>(row) * hidden + c;
                scales[i] = norm_gamma[c] * inv;
                offsets[i] = norm_beta[c] - static_cast<float>(mean) * scales[i];
                const float a = lows[i] * scales[i] + offsets[i];
                const float b = highs[i] * scales[i] + offsets[i];
                low = std::min(low, std::min(a, b));
                high = std::max(high, std::max(a, b));
            }
        }
        return Grid(low, high, levels);
    };
    in_parts(rows, threads, [&](int begin, int end, int) {
        std::vector<float> staging;
        for (int row = begin; row < end; ++row) {
            float *u = expanded.data() + row * u_size + halo;
            Epilogue expand{be, nullptr, 0, true, ae};
            expand.sum = &sums[row];
            expand.squares = &squares[row];
            for (int t0 = 0; t0 < frames; t0 += kTile)
                tile_matmul(hidden, width, we, width, xq + row * row_size + t0, frames, expand,
                            u + t0, ld_u, frames - t0 < kTile ? frames - t0 : kTile, staging);
            float *low = lows.data() + row * hidden, *high = highs.data() + row * hidden;
            std::fill(low, low + hidden, INFINITY);
            std::fill(high, high + hidden, -INFINITY);
            track_rows(u, hidden, ld_u, frames, low, high);
        }
    });
    const Grid expanded_grid = normalised_grid(ge, bte);
    std::fill(sums.begin(), sums.end(), 0.0);
    std::fill(squares.begin(), squares.end(), 0.0);
    in_parts(rows, threads, [&](int begin, int end, int) {
        for (int row = begin; row < end; ++row) {
            float *u = expanded.data() + row * u_size + halo;
            quantize_rows(u, hidden, ld_u, frames, expanded_grid, scales.data() + row * hidden,
                          offsets.data() + row * hidden);
            float *low = lows.data() + row * hidden, *high = highs.data() + row * hidden;
            for (int c = 0; c < hidden; ++c) {
                float *channel = u + static_cast<size_t>(c) * ld_u;
                std::memset(channel + frames, 0, (ld_u - halo - frames) * 4);
                float *v = depthwise.data() + row * v_size + static_cast<size_t>(c) * padded;
                for (int t = 0; t < padded; t += kLanes) {
                    vf acc = splat(bd[c]);
                    for (int k = 0; k < kernel; ++k)
                        acc += wd[c * kernel + k] * load(channel + t + (k - centre) * dilation);
                    store(v + t, prelu(acc, ad));
                }
                vf vector_sum{}, vector_squares{};
                int t = 0;
                for (; t + kLanes <= frames; t += kLanes) {
                    const vf value = load(v + t);
                    vector_sum += value;
                    vector_squares += value * value;
                }
                float sum = horizontal_sum(vector_sum), square_sum = horizontal_sum(vector_squares);
                for (; t < frames; ++t) {
                    sum += v[t];
                    square_sum += v[t] * v[t];
                }
                sums[row] += sum;
                squares[row] += square_sum;
                low[c] = INFINITY;
                high[c] = -INFINITY;
                track_rows(v, 1, padded, frames, low + c, high + c);
            }
        }
    });
    const Grid depthwise_grid = normalised_grid(gd, btd);
    in_parts(rows, threads, [&](int begin, int end, int) {
        std::vector<float> staging;
        for (int row = begin; row < end; ++row) {
            float *v = depthwise.data() + row * v_size;
            quantize_rows(v, hidden, padded, frames, depthwise_grid, scales.data() + row * hidden,
                          offsets.data() + row * hidden);
            for (int t0 = 0; t0 < frames; t0 += kTile)
                tile_matmul(width, hidden, wp, hidden, v + t0, padded,
                            {bp, x + row * row_size + t0, frames, false, 0.f},
                            y + row * row_size + t0, frames,
                            frames - t0 < kTile ? frames - t0 : kTile, staging);
        }
    });
    return 0;
}

}  // extern "C"
