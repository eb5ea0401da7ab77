// vgg_bench: times the seed's network (or another preset) for training and inference, per layer,
// against the machine's GEMM ceiling measured in the same run. See bench/compare.sh for the
// side-by-side run against PyTorch.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <sys/resource.h>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <vgg/vgg.hpp>

#include "cli_checks.hpp"
#include "seed_presets.hpp"

namespace {

using clock_type = std::chrono::steady_clock;

double seconds_since(clock_type::time_point start)
{
    return std::chrono::duration<double>(clock_type::now() - start).count();
}

double median(std::vector<double> values)
{
    std::sort(values.begin(), values.end());
    const std::size_t n = values.size();
    return n % 2 ? values[n / 2] : (values[n / 2 - 1] + values[n / 2]) / 2;
}

double peak_rss_mb()
{
    rusage usage{};
    getrusage(RUSAGE_SELF, &usage);
    return double(usage.ru_maxrss) / 1024.0;
}

/// The CPU's model name, as /proc/cpuinfo gives it.
std::string cpu_model()
{
    std::ifstream cpuinfo("/proc/cpuinfo");
    for (std::string line; std::getline(cpuinfo, line);)
        if (line.rfind("model name", 0) == 0)
            return line.substr(line.find(':') + 2);
    return "unknown CPU";
}

/// Which product code ran: vgg's own GEMM, its register tile and the instruction set.
std::string gemm_description(vgg::precision compute)
{
    if (compute == vgg::precision::bf16)
        return vgg::kernels::best_bf16_kernel() == vgg::kernels::bf16_kernel::amx
                   ? "vgg gemm_bf16 and convolutions on AMX (fp32 sums), no Winograd"
                   : "vgg gemm_bf16 on AVX512_BF16 (fp32 sums), fp32 Winograd where it runs a convolution";
    return "vgg gemm, " + std::to_string(vgg::kernels::micro_rows) + "x" + std::to_string(vgg::kernels::micro_columns) +
           " register tile, " + xsimd::default_arch::name();
}

/// GFLOPS of vgg's GEMM for conv-sized products the way vgg runs them: every thread runs its
/// own single-threaded product at once (the best of a few tries).
double gemm_ceiling_gflops()
{
    constexpr std::size_t m = 128, n = 3136, k = 1152;
    const int threads = vgg::max_threads();
    std::vector<vgg::aligned_vector<float>> a(threads), b(threads), c(threads);
    double best = 0;
    for (int attempt = 0; attempt < 5; ++attempt) {
        double elapsed = 0;
        vgg::detail::parallel_ranges(threads, 4 * 2 * m * n * k, [&](std::size_t t, std::size_t, vgg::detail::range) {
            a[t].assign(m * k, 0.5f);
            b[t].assign(k * n, 0.25f);
            c[t].assign(m * n, 0.f);
#pragma omp barrier
            const auto start = clock_type::now();
            for (int r = 0; r < 4; ++r)
                vgg::kernels::gemm(m, n, k, vgg::kernels::row_major(a[t].data(), k),
                                   vgg::kernels::row_major(b[t].data(), n), c[t].data(), n,
                                   vgg::kernels::gemm_update::accumulate);
#pragma omp barrier
            if (t == 0)
                elapsed = seconds_since(start);
        });
        best = std::max(best, 4.0 * 2.0 * m * n * k * threads / elapsed / 1e9);
    }
    return best;
}

struct options {
    std::string model = "seed";
    std::size_t resize = 224, ratio = 4, batch = 128, reps = 5, warmup = 1, calibration = 32;
    int threads = vgg::max_threads();
    vgg_cli::inference_precision precision;
    bool json = false;
    bool freeze_features = false;
};

/// The share of each fully connected layer's inputs zero in every image of the last forward pass:
/// a batch of up to kernels::linear_small_batch images does not read their weights, so its speed
/// depends on them (ReLU zeroes about half with random weights).
template <class Net>
std::vector<double> linear_inputs_zero(const Net& net)
{
    std::vector<double> shares;
    std::span<const float> previous_output;
    std::size_t previous_batch = 0;
    net.visit_layers([&](std::size_t, const auto& layer, const auto& output) {
        if (layer.name == std::string_view("Linear") && previous_batch > 0) {
            const std::size_t features = previous_output.size() / previous_batch;
            std::size_t zero = 0;
            for (std::size_t k = 0; k < features; ++k) {
                bool all_zero = true;
                for (std::size_t b = 0; b < previous_batch; ++b)
                    all_zero = all_zero && previous_output[b * features + k] == 0.f;
                zero += all_zero;
            }
            shares.push_back(double(zero) / double(features));
        }
        previous_output = output.values();
        previous_batch = output.batch();
    });
    return shares;
}

template <class Net>
int run(const options& opt)
{
    using input_t = vgg::tensor<typename Net::input_shape>;
    auto net = std::make_unique<Net>();
    vgg::rng random(1);
    net->initialize(vgg::weight_init::xavier_uniform, random);
    if (opt.freeze_features)
        vgg::freeze_features(*net);
    vgg::sgd optimiser(0.05f);
    input_t x(opt.batch);
    for (auto& v : x.values())
        v = random.uniform();
    std::vector<int> labels(opt.batch);
    for (auto& l : labels)
        l = static_cast<int>(random.below(Net::output_shape::size));
    vgg::tensor<typename Net::output_shape> grad;

    constexpr auto rows = vgg::summary<Net>();
    constexpr std::size_t layers = Net::layer_count;
    std::array<std::size_t, layers> flops{};
    // clang-format off
    [&]<std::size_t... I>(std::index_sequence<I...>) {
        ((flops[I] = [] {
             using layer_t = std::remove_cvref_t<decltype(std::declval<Net&>().template layer<I>())>;
             if constexpr (requires { layer_t::forward_flops; })
                 return layer_t::forward_flops;
             else
                 return std::size_t{0};
         }()),
         ...);
    }(std::make_index_sequence<layers>{});
    // clang-format on
    std::size_t step_flops = 0;
    for (std::size_t i = 0; i < layers; ++i)
        step_flops += flops[i] * (i == 0 ? 2 : 3); // the first layer computes no input gradient

    const auto timed_inference = [&] {
        const auto start = clock_type::now();
        net->forward(x, {vgg::mode::eval, 0, 0, opt.precision.products});
        return seconds_since(start);
    };
    std::vector<std::array<double, layers>> forward_ms, backward_ms;
    std::vector<double> train_seconds, infer_seconds, infer_after_step_seconds;
    for (std::size_t rep = 0; rep < opt.warmup + opt.reps; ++rep) {
        std::array<double, layers> fwd{}, bwd{};
        auto timed = [](std::array<double, layers>& into) {
            return [&into](std::size_t index, auto&& layer) {
                const auto start = clock_type::now();
                layer();
                into[index] = seconds_since(start) * 1e3;
            };
        };
        const auto start = clock_type::now();
        const auto& logits = net->forward(x, {vgg::mode::train, rep, 0, opt.precision.products}, timed(fwd));
        vgg::softmax_cross_entropy(logits, labels, grad);
        net->backward(grad, nullptr, timed(bwd));
        optimiser.step(*net);
        const double train = seconds_since(start);
        const double infer_after_step = timed_inference(); // the weights just changed
        if (rep >= opt.warmup) {
            train_seconds.push_back(train);
            infer_after_step_seconds.push_back(infer_after_step);
            forward_ms.push_back(fwd);
            backward_ms.push_back(bwd);
        }
    }
    // Inference with the same weights pass after pass, as a trained network serves (evaluation
    // keeps its transformed kernels; the warm-up passes make them).
    for (std::size_t rep = 0; rep < opt.warmup + opt.reps; ++rep) {
        const double infer = timed_inference();
        if (rep >= opt.warmup)
            infer_seconds.push_back(infer);
    }
    const auto zero_inputs = linear_inputs_zero(*net);
    const double ceiling = gemm_ceiling_gflops();
    const double train_s = median(train_seconds), infer_s = median(infer_seconds),
                 infer_after_step_s = median(infer_after_step_seconds);
    const double train_gflops = double(step_flops) * double(opt.batch) / train_s / 1e9;
    nlohmann::ordered_json result = {
        {"library", "vgg"},
        {"model", opt.model},
        {"resize", opt.resize},
        {"ratio", opt.ratio},
        {"batch", opt.batch},
        {"threads", opt.threads},
        {"reps", opt.reps},
        {"frozen_features", opt.freeze_features},
        {"train_step_s", train_s},
        {"train_img_per_s", double(opt.batch) / train_s},
        {"infer_img_per_s", double(opt.batch) / infer_s},
        {"infer_after_step_img_per_s", double(opt.batch) / infer_after_step_s},
        {"train_gflops", train_gflops},
        {"gemm_ceiling_gflops", ceiling},
        {"fraction_of_ceiling", train_gflops / ceiling},
        {"peak_rss_mb", peak_rss_mb()},
        {"linear_inputs_zero", zero_inputs},
        {"cpu", cpu_model()},
        {"precision", to_string(opt.precision.products)},
        {"gemm", gemm_description(opt.precision.products)},
    };
    auto& per_layer = result["layers"] = nlohmann::ordered_json::array();
    for (std::size_t i = 0; i < layers; ++i) {
        std::vector<double> f, b;
        for (std::size_t r = 0; r < forward_ms.size(); ++r) {
            f.push_back(forward_ms[r][i]);
            b.push_back(backward_ms[r][i]);
        }
        const double fm = median(f), bm = median(b);
        const double work = double(flops[i]) * double(opt.batch);
        per_layer.push_back({{"index", i},
                             {"name", std::string(rows[i].name)},
                             {"forward_ms", fm},
                             {"backward_ms", bm},
                             {"forward_gflops", work / fm / 1e6},
                             {"backward_gflops", work * (i == 0 ? 1 : 2) / bm / 1e6}});
    }
    if (opt.json) {
        std::cout << result.dump() << '\n';
        return 0;
    }
    if (opt.model == "vgg16")
        std::printf("vgg, torchvision's VGG-16 at 3x224x224, batch %zu, %d threads (median of %zu)\n", opt.batch,
                    opt.threads, opt.reps);
    else
        std::printf("vgg, VGG-11 / %zu at %zux%zu, batch %zu, %d threads (median of %zu)\n", opt.ratio, opt.resize,
                    opt.resize, opt.batch, opt.threads, opt.reps);
    std::printf("%s; %s\n", cpu_model().c_str(), gemm_description(opt.precision.products).c_str());
    std::printf("%-4s %-10s %12s %10s %12s %10s\n", "", "layer", "forward ms", "GFLOPS", "backward ms", "GFLOPS");
    for (const auto& l : per_layer) {
        const std::size_t index = l["index"];
        const std::string name = l["name"];
        const double values[4] = {l["forward_ms"], l["forward_gflops"], l["backward_ms"], l["backward_gflops"]};
        std::printf("%-4zu %-10s %12.1f %10.1f %12.1f %10.1f\n", index, name.c_str(), values[0], values[1], values[2],
                    values[3]);
    }
    std::printf("training step: %.3f s, %.1f img/s, %.1f GFLOPS = %.0f%% of the %.1f GFLOPS GEMM ceiling\n", train_s,
                double(opt.batch) / train_s, train_gflops, 100 * train_gflops / ceiling, ceiling);
    std::printf(
        "(GFLOPS count a direct convolution's multiply-adds; Winograd layers do fewer, so can pass the ceiling)\n");
    std::printf("inference:     %.3f s, %.1f img/s (%.1f right after a training step)\n", infer_s,
                double(opt.batch) / infer_s, double(opt.batch) / infer_after_step_s);
    std::printf("peak RSS:      %.0f MB\n", peak_rss_mb());
    std::printf("fully connected inputs zero in every image (weights not read up to batch %zu):",
                vgg::kernels::linear_small_batch);
    for (const double share : zero_inputs)
        std::printf(" %.0f%%", 100 * share);
    std::printf("\n");
    return 0;
}

/// --precision int8: inference of the network quantised to int8 against its fp32 inference, in
/// alternating rounds, and the int8 network's time per layer.
template <class Net>
int run_int8(const options& opt)
{
    using input_t = vgg::tensor<typename Net::input_shape>;
    auto net = std::make_unique<Net>();
    vgg::rng random(1);
    net->initialize(vgg::weight_init::xavier_uniform, random);
    input_t x(opt.batch), calibration(opt.calibration);
    for (auto* t : {&x, &calibration})
        for (auto& v : t->values())
            v = random.uniform();
    auto quantised = vgg::int8::quantize(*net, calibration);
    const auto& layers = quantised.layers();
    std::vector<std::vector<double>> layer_ms(layers.size());
    std::vector<double> fp32_seconds, int8_seconds;
    for (std::size_t rep = 0; rep < opt.warmup + opt.reps; ++rep) {
        auto start = clock_type::now();
        net->forward(x, {vgg::mode::eval});
        const double fp32 = seconds_since(start);
        std::vector<double> ms(layers.size());
        start = clock_type::now();
        quantised.forward(x, [&](std::size_t index, auto&& layer) {
            const auto layer_start = clock_type::now();
            layer();
            ms[index] = seconds_since(layer_start) * 1e3;
        });
        const double int8 = seconds_since(start);
        if (rep < opt.warmup)
            continue;
        fp32_seconds.push_back(fp32);
        int8_seconds.push_back(int8);
        for (std::size_t i = 0; i < layers.size(); ++i)
            layer_ms[i].push_back(ms[i]);
    }
    const double fp32_rate = double(opt.batch) / median(fp32_seconds),
                 int8_rate = double(opt.batch) / median(int8_seconds);
    nlohmann::ordered_json result = {{"library", "vgg"},
                                     {"model", opt.model},
                                     {"resize", opt.resize},
                                     {"ratio", opt.ratio},
                                     {"batch", opt.batch},
                                     {"threads", opt.threads},
                                     {"reps", opt.reps},
                                     {"precision", "int8"},
                                     {"int8_kernel", to_string(quantised.kernel())},
                                     {"infer_img_per_s", int8_rate},
                                     {"fp32_infer_img_per_s", fp32_rate},
                                     {"cpu", cpu_model()}};
    auto& per_layer = result["layers"] = nlohmann::ordered_json::array();
    for (std::size_t i = 0; i < layers.size(); ++i) {
        const double ms = median(layer_ms[i]);
        per_layer.push_back({{"index", i},
                             {"name", layers[i].name},
                             {"forward_ms", ms},
                             {"forward_gops", double(layers[i].operations) * double(opt.batch) / ms / 1e6}});
    }
    if (opt.json) {
        std::cout << result.dump() << '\n';
        return 0;
    }
    const std::string network = opt.model == "vgg16"
                                    ? "torchvision's VGG-16 at 3x224x224"
                                    : "VGG-11 / " + std::to_string(opt.ratio) + " at " + std::to_string(opt.resize) +
                                          "x" + std::to_string(opt.resize);
    std::printf("vgg int8 inference, %s, batch %zu, %d threads (median of %zu, alternating with fp32)\n",
                network.c_str(), opt.batch, opt.threads, opt.reps);
    std::printf("%s; %s int8 kernels\n", cpu_model().c_str(), std::string(to_string(quantised.kernel())).c_str());
    if (const auto note = vgg::kernels::int8_kernel_note(quantised.kernel()); !note.empty())
        std::printf("(%s)\n", note.c_str());
    std::printf("%-4s %-26s %12s %10s\n", "", "layer", "forward ms", "GOPS");
    for (const auto& l : per_layer) {
        const std::size_t index = l["index"];
        const std::string name = l["name"];
        std::printf("%-4zu %-26s %12.2f %10.1f\n", index, name.c_str(), double(l["forward_ms"]),
                    double(l["forward_gops"]));
    }
    std::printf("inference: int8 %.1f img/s, fp32 %.1f img/s: %.2fx\n", int8_rate, fp32_rate, int8_rate / fp32_rate);
    std::printf("(GOPS count the multiplies and adds of a direct convolution)\n");
    return 0;
}

/// Runs the benchmark `opt` asks for on network Net.
template <class Net>
int run_for(const options& opt)
{
    return opt.precision.int8 ? run_int8<Net>(opt) : run<Net>(opt);
}

} // namespace

int main(int argc, char** argv)
{
    options opt;
    CLI::App app{"Times training and inference of the seed's VGG-11 (or another preset), or of torchvision's VGG-16."};
    app.add_option("--model", opt.model,
                   "seed: the seed's VGG-11 (see --resize, --ratio); vgg16: torchvision's VGG-16 at 3x224x224")
        ->check(CLI::IsMember({"seed", "vgg16"}))
        ->capture_default_str();
    vgg_examples::add_seed_preset_options(app, opt.resize, opt.ratio, "Input resolution", "Channel divisor");
    app.add_option("--batch", opt.batch, "Batch size")
        ->check(vgg_cli::number_in<std::size_t>(1, 4096))
        ->capture_default_str();
    app.add_option("--threads", opt.threads, "OpenMP threads")
        ->check(vgg_cli::number_in(1, 1024))
        ->capture_default_str();
    app.add_option("--reps", opt.reps, "Timed repetitions (the median is reported)")
        ->check(vgg_cli::number_in<std::size_t>(1, 1000))
        ->capture_default_str();
    app.add_option("--warmup", opt.warmup, "Untimed repetitions first")
        ->check(vgg_cli::number_in<std::size_t>(0, 100))
        ->capture_default_str();
    vgg_cli::add_inference_precision_option(app, opt.precision)
        ->description("Arithmetic: fp32; bf16 products with fp32 sums (on CPUs with AMX or AVX512_BF16); or int8: "
                      "inference only, of the network quantised after training against its fp32 inference");
    app.add_option("--calibration", opt.calibration, "With --precision int8: calibration images (random, as the input)")
        ->check(vgg_cli::number_in<std::size_t>(1, 4096))
        ->capture_default_str();
    app.add_flag("--json", opt.json, "Print one JSON object");
    app.add_flag(
        "--freeze-features", opt.freeze_features,
        "Freeze the convolutional blocks, as fine-tuning a new head does: a training step runs them forward only");
    if (const auto code = vgg_cli::parse(app, argc, argv))
        return *code;
    vgg::set_threads(opt.threads);
    if (opt.model == "vgg16")
        return run_for<vgg::vgg16<vgg::shape<3, 224, 224>>>(opt);
    return vgg_examples::with_seed_preset(
        opt.resize, opt.ratio,
        [&]<std::size_t Resize, std::size_t Ratio>() {
            return run_for<vgg_examples::seed_network<Resize, Ratio>>(opt);
        },
        vgg_cli::usage);
}
