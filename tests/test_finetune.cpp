// What fine-tuning needs: loading weights made elsewhere (non-strictly, with a report; torchvision
// state_dicts with their I64 counters), freezing, gradients from taps inside a network, and the
// optimisers and schedules of torch.optim. tests/finetune_reference.py makes the PyTorch side.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <memory>
#include <set>
#include <span>
#include <string>
#include <vector>

#include <vgg/io/safetensors.hpp>
#include <vgg/train/fit.hpp>
#include <vgg/vgg.hpp>

#include "cpu_skip.hpp"
#include "gradient_check.hpp"
#include "test_support.hpp"

using namespace vgg;
namespace fs = std::filesystem;
using vgg::testing::error_of;
using vgg::testing::relative_difference;
using vgg::testing::scratch_file;

namespace {

fs::path finetune_reference_dir()
{
    return testing::python_reference(VGG_TEST_SOURCE_DIR, VGG_TEST_BINARY_DIR, "finetune_reference.py",
                                     "finetune_reference");
}

/// Every value and buffer of a network as a file holds them: by name, in the order of their shapes.
template <class Net>
io::safetensors_content content_of(Net& net)
{
    io::safetensors_content content;
    net.visit_parameters([&](const parameter_view& p) {
        std::vector<float> ordered(p.value.size());
        copy_in_shape_order(p.shape, p.order, p.value, ordered.data());
        content.tensors[p.name] = {p.shape, std::move(ordered), "F32", {}};
    });
    return content;
}

/// content_of's values by name: what torch's state_dict holds (a Linear's weight [Out, In]).
template <class Net>
std::map<std::string, std::vector<float>> values_in_shape_order(Net& net)
{
    std::map<std::string, std::vector<float>> values;
    for (auto& entry : content_of(net).tensors)
        values[entry.first] = std::move(entry.second.values);
    return values;
}

template <class Shape>
void copy_into(tensor<Shape>& x, const io::stored_tensor& stored)
{
    x.resize(stored.shape.at(0));
    REQUIRE(stored.values.size() == x.size());
    std::copy(stored.values.begin(), stored.values.end(), x.data());
}

using bn_net_7 = Sequential<shape<3, 8, 8>, VGGBlockBN<1, 3, 4>, Flatten, Linear<64, 7>>;
using bn_net_5 = Sequential<shape<3, 8, 8>, VGGBlockBN<1, 3, 4>, Flatten, Linear<64, 5>>;

} // namespace

TEST_CASE("a non-strict load takes what fits and reports exactly what it skipped, as load_state_dict(strict=False)")
{
    bn_net_7 source;
    bn_net_5 net;
    rng random(1);
    source.initialize(weight_init::xavier_uniform, random);
    net.initialize(weight_init::xavier_uniform, random);
    auto content = content_of(source);
    content.tensors.erase("0.0.bias");
    content.tensors["extra"] = {{2}, {1.f, 2.f}, "F32", {}};
    content.tensors["0.1.num_batches_tracked"] = {{}, {}, "I64", {7}};
    const auto before = values_in_shape_order(net);
    const fs::path file = "weights.safetensors";

    const auto report = io::load_weights(net, content, file, io::load_options::non_strict());
    CHECK(report.loaded ==
          std::vector<std::string>{"0.0.weight", "0.1.weight", "0.1.bias", "0.1.running_mean", "0.1.running_var"});
    CHECK(report.missing == std::vector<std::string>{"0.0.bias"});
    CHECK(report.unexpected == std::vector<std::string>{"extra"});
    CHECK(report.counters == std::vector<std::string>{"0.1.num_batches_tracked"});
    REQUIRE(report.mismatched.size() == 2);
    CHECK(report.mismatched[0].name == "2.weight");
    CHECK(report.mismatched[0].file_shape == std::vector<std::size_t>{7, 64});
    CHECK(report.mismatched[0].network_shape == std::vector<std::size_t>{5, 64});
    CHECK(report.mismatched[1].name == "2.bias");
    CHECK(!report.complete());
    CHECK(report.text() ==
          "loaded 5 tensors, ignored 1 num_batches_tracked counters; missing from the file: 0.0.bias; "
          "not in the network: extra; 2.weight is [7, 64] in the file, [5, 64] in the network; 2.bias is "
          "[7] in the file, [5] in the network");
    const auto after = values_in_shape_order(net), theirs = values_in_shape_order(source);
    for (const auto& name : report.loaded)
        CHECK(after.at(name) == theirs.at(name));
    for (const std::string name : {"0.0.bias", "2.weight", "2.bias"})
        CHECK(after.at(name) == before.at(name));

    SUBCASE("strict: the first difference is an error and nothing is loaded")
    {
        bn_net_5 fresh;
        const auto untouched = values_in_shape_order(fresh);
        CHECK(
            error_of([&] { io::load_weights(fresh, content, file); }) ==
            "weights.safetensors: tensor \"0.0.bias\" [4] is missing (is this a checkpoint of another architecture?)");
        CHECK(values_in_shape_order(fresh) == untouched);
    }
    SUBCASE("a selection loads only the parameters it names")
    {
        bn_net_5 fresh;
        const auto selected =
            io::load_weights(fresh, content, file, io::load_options::non_strict(io::names_starting_with("2.")));
        CHECK(selected.loaded.empty());
        CHECK(selected.missing.empty());
        CHECK(selected.not_selected.size() == 6);
        CHECK(selected.mismatched.size() == 2);
        CHECK(selected.unexpected == std::vector<std::string>{"extra"});
    }
    SUBCASE("a counter that is no count is an error even when not strict")
    {
        content.tensors["0.1.num_batches_tracked"] = {{}, {}, "I64", {-3}};
        CHECK(error_of([&] { io::load_weights(net, content, file, io::load_options::non_strict()); }) ==
              "weights.safetensors: tensor \"0.1.num_batches_tracked\" should be batch norm's count of batches, one "
              "non-negative integer, but is I64 [] holding -3");
        content.tensors["0.1.num_batches_tracked"] = {{1}, {3.f}, "F32", {}};
        CHECK(error_of([&] {
                  io::load_weights(net, content, file, io::load_options::non_strict());
              }).find("but is F32 [1]") != std::string::npos);
    }
    SUBCASE("an integer tensor where a float parameter belongs is a mismatch")
    {
        content.tensors["0.0.bias"] = {{4}, {}, "I32", {1, 2, 3, 4}};
        CHECK(
            error_of([&] { io::load_weights(net, content, file); }) ==
            "weights.safetensors: tensor \"0.0.bias\" has dtype I32, not a floating-point one, and shape [4], but this "
            "network needs [4]");
    }
}

TEST_CASE("a torchvision state_dict saved as is (I64 counters) loads strictly and gives torchvision's logits")
{
    const fs::path dir = finetune_reference_dir();
    using net_type = TorchvisionVGG<shape<3, 32, 32>, batch_norm<vgg11_arch>, 10, 64>;
    auto net = std::make_unique<net_type>();
    const auto report = io::load_weights(*net, dir / "vgg11_bn-plain.safetensors", {});
    CHECK(report.complete());
    CHECK(report.counters.size() == 8); // one per batch norm
    const auto reference = io::read_safetensors(dir / "vgg11_bn-plain-logits.safetensors");
    tensor<shape<3, 32, 32>> images;
    copy_into(images, reference.tensors.at("images"));
    const auto& logits = net->forward(images, {mode::eval, 0});
    const float difference = relative_difference(logits.values(), reference.tensors.at("logits").values);
    MESSAGE("vgg11_bn at 32x32 from a plain state_dict: largest logit difference " << difference
                                                                                   << " of the largest logit");
    CHECK(difference <= 1e-4f);
}

namespace {

using frozen_net = Sequential<shape<3, 16, 16>, VGGBlockBN<1, 3, 8>, VGGBlock<2, 8, 8>, Flatten, Linear<8 * 4 * 4, 4>>;

template <class Net>
void training_step(Net& net, rng& random, auto& optimiser, std::set<std::size_t>* backward_ran = nullptr)
{
    tensor<typename Net::input_shape> x(6);
    vgg::testing::fill_uniform(x.values(), random);
    std::vector<int> labels{0, 1, 2, 3, 0, 1};
    tensor<typename Net::output_shape> grad;
    softmax_cross_entropy(net.forward(x, {mode::train, random.below(1000)}), labels, grad);
    net.backward(grad, nullptr, [&](std::size_t layer, auto&& run) {
        if (backward_ran)
            backward_ran->insert(layer);
        run();
    });
    optimiser.step(net);
}

} // namespace

TEST_CASE("frozen layers keep their parameters and running statistics byte for byte, get no gradient, and backward "
          "skips them")
{
    frozen_net net;
    rng random(2);
    net.initialize(weight_init::xavier_uniform, random);
    net.freeze(0, 2);
    CHECK(net.frozen_layers() == "0-1");
    // Frozen gradients hold a mark that a backward pass writing them would overwrite.
    net.visit_parameters([](const parameter_view& p) {
        CHECK(p.frozen == (p.layer < 2));
        if (p.frozen)
            std::fill(p.grad.begin(), p.grad.end(), 7.f);
    });
    const auto before = values_in_shape_order(net);
    auto check_after = [&](const char* optimiser_name) {
        CAPTURE(optimiser_name);
        const auto after = values_in_shape_order(net);
        for (const auto& entry : after) {
            const std::string& name = entry.first;
            const std::vector<float>& values = entry.second;
            CAPTURE(name);
            if (name.rfind("3.", 0) == 0)
                CHECK(values != before.at(name));
            else
                CHECK(values == before.at(name));
        }
        net.visit_parameters([](const parameter_view& p) {
            if (p.frozen)
                CHECK(std::all_of(p.grad.begin(), p.grad.end(), [](float g) { return g == 7.f; }));
        });
    };
    std::set<std::size_t> backward_ran;
    SUBCASE("sgd with momentum and weight decay")
    {
        sgd optimiser(0.1f, 0.9f, 1e-2f);
        for (int step = 0; step < 3; ++step)
            training_step(net, random, optimiser, &backward_ran);
        CHECK(optimiser.state().size() == 2); // the Linear's weight and bias only
        check_after("sgd");
    }
    SUBCASE("adamw")
    {
        adamw optimiser(1e-2f);
        for (int step = 0; step < 3; ++step)
            training_step(net, random, optimiser, &backward_ran);
        check_after("adamw");
    }
    // Only the Linear ran: not Flatten below it, nor the frozen blocks.
    CHECK(backward_ran == std::set<std::size_t>{3});
}

TEST_CASE("through frozen layers the input gradient is the full network's, computed without their weight gradients")
{
    using net_type = Sequential<shape<3, 16, 16>, VGGBlock<2, 3, 16>, Conv3x3<16, 8>, ReLU, MaxPool2x2,
                                VGGBlockBN<1, 8, 8>, Flatten, Linear<8 * 2 * 2, 5>>;
    net_type frozen, full;
    rng random(3);
    frozen.initialize(weight_init::xavier_uniform, random);
    rng same(3);
    full.initialize(weight_init::xavier_uniform, same);
    tensor<shape<3, 16, 16>> x(3);
    vgg::testing::fill_uniform(x.values(), random);
    tensor<shape<5>> dy(3);
    vgg::testing::fill_uniform(dy.values(), random);
    tensor<shape<3, 16, 16>> dx_frozen, dx_full;
    // Both in evaluation mode, so that frozen batch norm and the full network's agree.
    frozen.freeze(0, 6);
    frozen.visit_parameters([](const parameter_view& p) {
        if (p.frozen)
            std::fill(p.grad.begin(), p.grad.end(), 7.f);
    });
    frozen.forward(x, {mode::eval, 0});
    frozen.backward(dy, &dx_frozen);
    full.forward(x, {mode::eval, 0});
    full.backward(dy, &dx_full);
    const float difference = relative_difference(dx_frozen.values(), dx_full.values());
    MESSAGE("input gradient through frozen layers against the full backward pass: " << difference);
    CHECK(difference < 1e-5f);
    frozen.visit_parameters([](const parameter_view& p) {
        if (p.frozen)
            CHECK(std::all_of(p.grad.begin(), p.grad.end(), [](float g) { return g == 7.f; }));
    });
    CHECK_THROWS_AS(frozen.freeze(2, 9), std::out_of_range);
    CHECK_THROWS_AS(frozen.freeze(3, 2), std::out_of_range);
}

TEST_CASE("gradients given at VGG-16's taps (a perceptual loss) give PyTorch autograd's input gradient")
{
    static_assert(vgg16_taps::relu1_2 == 3 && vgg16_taps::relu2_2 == 8 && vgg16_taps::relu3_3 == 15 &&
                  vgg16_taps::relu4_3 == 22 && vgg16_taps::relu5_3 == 29);
    static_assert(vgg19_taps::relu1_2 == 3 && vgg19_taps::relu3_4 == 17 && vgg19_taps::relu5_4 == 35);
    const fs::path dir = finetune_reference_dir();
    using features = vgg16_features<shape<3, 32, 32>>;
    auto net = std::make_unique<features>();
    io::load_weights(*net, dir / "vgg16-features.safetensors");
    net->freeze(0, features::layer_count);
    const auto reference = io::read_safetensors(dir / "perceptual.safetensors");
    tensor<shape<3, 32, 32>> x1, x2, dx;
    copy_into(x1, reference.tensors.at("x1"));
    copy_into(x2, reference.tensors.at("x2"));

    using namespace vgg16_taps;
    net->forward_to<relu4_3>(x2);
    const auto t1 = net->output<relu1_2>();
    const auto t2 = net->output<relu2_2>();
    const auto t3 = net->output<relu3_3>();
    const auto t4 = net->output<relu4_3>();
    net->forward_to<relu4_3>(x1);
    double loss = 0;
    // d/da mean((a - b)^2) = 2 (a - b) / count
    auto mse_gradient = [&](const auto& a, const auto& b) {
        auto g = b;
        for (std::size_t i = 0; i < g.size(); ++i) {
            const float d = a.data()[i] - b.data()[i];
            loss += double(d) * d / double(g.size());
            g.data()[i] = 2.f * d / float(g.size());
        }
        return g;
    };
    const auto g1 = mse_gradient(net->output<relu1_2>(), t1);
    const auto g2 = mse_gradient(net->output<relu2_2>(), t2);
    const auto g3 = mse_gradient(net->output<relu3_3>(), t3);
    const auto g4 = mse_gradient(net->output<relu4_3>(), t4);
    net->backward_from_taps(&dx, tap<relu2_2>(g2), tap<relu1_2>(g1), tap<relu4_3>(g4), tap<relu3_3>(g3));
    CHECK(loss == doctest::Approx(reference.tensors.at("loss").values[0]).epsilon(1e-5));
    const float difference = relative_difference(dx.values(), reference.tensors.at("grad").values);
    MESSAGE("perceptual loss on relu1_2 ... relu4_3: input gradient against autograd, largest difference "
            << difference << " of the largest");
    CHECK(difference <= 1e-4f);
    net->visit_parameters([](const parameter_view& p) { CHECK(p.frozen); });

    SUBCASE("a tap above where the forward pass stopped is an error")
    {
        net->forward_to<relu1_2>(x1);
        CHECK_THROWS_AS(net->backward_from_taps(&dx, tap<relu2_2>(g2)), std::logic_error);
    }
}

namespace {

using tiny_mlp = Sequential<shape<6>, Linear<6, 5>, ReLU, Linear<5, 3>>;

/// Sets every parameter's values (or gradients) from `source` tensors named prefix + name.
void set_from(tiny_mlp& net, const io::safetensors_content& source, const std::string& prefix, bool gradients)
{
    net.visit_parameters([&](const parameter_view& p) {
        const auto& stored = source.tensors.at(prefix + p.name);
        copy_from_shape_order(p.shape, p.order, stored.values, gradients ? p.grad.data() : p.value.data());
    });
}

template <class Optimizer>
void check_against_torch(Optimizer optimiser, const std::string& name, const lr_schedule& schedule,
                         const std::string& schedule_name)
{
    const auto golden = io::read_safetensors(finetune_reference_dir() / "optimizers.safetensors");
    const std::string key = name + "." + schedule_name;
    CAPTURE(key);
    tiny_mlp net;
    set_from(net, golden, "initial.", false);
    const float base = optimiser.learning_rate;
    const auto& rates = golden.tensors.at(key + ".lr").values;
    for (std::size_t step = 0; step < 20; ++step) {
        set_from(net, golden, "grad." + std::to_string(step) + ".", true);
        clip_grad_norm(net, 5.f);
        optimiser.learning_rate = schedule.learning_rate(base, step);
        CHECK(optimiser.learning_rate == doctest::Approx(rates[step]).epsilon(1e-6));
        optimiser.step(net);
    }
    const auto final_values = values_in_shape_order(net);
    for (const auto& [parameter, values] : final_values) {
        const auto& expected = golden.tensors.at(key + ".final." + parameter).values;
        for (std::size_t i = 0; i < values.size(); ++i)
            CHECK(values[i] == doctest::Approx(expected[i]).epsilon(2e-5).scale(1.f));
    }
}

} // namespace

TEST_CASE(
    "Adam, AdamW and SGD with Nesterov momentum follow torch.optim for 20 steps under each schedule, with clipping")
{
    const std::map<std::string, lr_schedule> schedules{
        {"step", lr_schedule::step(5, 0.5f)},
        {"multistep", lr_schedule::multi_step({3, 8, 15}, 0.3f)},
        {"cosine", lr_schedule::cosine(20, 1e-4f)},
        {"warmup_cosine", lr_schedule::cosine(16).after_warmup(4, 0.25f)}};
    for (const auto& [schedule_name, schedule] : schedules) {
        check_against_torch(sgd(0.1f, 0.9f, 1e-3f, true), "sgd_nesterov", schedule, schedule_name);
        check_against_torch(adam(0.01f, 0.9f, 0.999f, 1e-8f, 0.01f), "adam", schedule, schedule_name);
        check_against_torch(adamw(0.01f, 0.9f, 0.999f, 1e-8f, 0.05f), "adamw", schedule, schedule_name);
    }
    CHECK(lr_schedule::cosine(16).after_warmup(4, 0.25f).text() ==
          "cosine(t_max=16, eta_min=0) per epoch after warmup(4, 0.25)");
    CHECK_THROWS_AS(adam(0.01f, 1.f), std::invalid_argument);
    CHECK_THROWS_AS(lr_schedule::multi_step({5, 3}), std::invalid_argument);
}

namespace {

// The quadrant task of test_training on 3x16x16, as a dataset: sample i is drawn from seed i.
struct quadrant_dataset {
    using sample_shape = shape<3, 16, 16>;
    std::size_t count;
    std::size_t size() const { return count; }
    std::size_t classes() const { return 4; }
    void load_batch(std::span<const std::size_t> indices, tensor<sample_shape>& images, std::vector<int>& labels) const
    {
        images.resize(indices.size());
        labels.resize(indices.size());
        for (std::size_t n = 0; n < indices.size(); ++n) {
            rng random(indices[n] + 1000);
            const int label = static_cast<int>(indices[n] % 4);
            labels[n] = label;
            for (std::size_t i = 0; i < images.sample_size; ++i)
                images.sample(n)[i] = random.uniform(0.f, 0.3f);
            const std::size_t top = (label / 2) * 8 + random.below(4), left = (label % 2) * 8 + random.below(4);
            for (std::size_t c = 0; c < 3; ++c)
                for (std::size_t r = 0; r < 4; ++r)
                    for (std::size_t k = 0; k < 4; ++k)
                        images(n, c, top + r, left + k) = 1.f;
        }
    }
};

using resume_net = Sequential<shape<3, 16, 16>, VGGBlockBN<1, 3, 8>, VGGBlock<1, 8, 16>, Flatten,
                              Linear<16 * 4 * 4, 32>, ReLU, Dropout<50>, Linear<32, 4>>;

fit_options resume_options(const fs::path& out, std::size_t epochs)
{
    fit_options options;
    options.epochs = epochs;
    options.batch_size = 16;
    options.out = out;
    options.schedule = lr_schedule::cosine(4 * 6, 1e-5f, schedule_unit::step).after_warmup(5, 0.1f);
    options.clip_grad_norm = 1.f;
    return options;
}

} // namespace

TEST_CASE("a resume in the middle of an AdamW + cosine run with a frozen block ends with the same bytes as an "
          "uninterrupted one")
{
    const quadrant_dataset train{96}, test{32};
    const fs::path whole = scratch_file("adamw-whole"), halves = scratch_file("adamw-halves");
    fs::remove_all(whole);
    fs::remove_all(halves);
    auto fresh = [] {
        auto net = std::make_unique<resume_net>();
        rng random(9);
        net->initialize(weight_init::xavier_uniform, random);
        net->freeze(0, 1);
        return net;
    };
    auto uninterrupted = fresh();
    adamw whole_optimiser(3e-3f);
    const auto whole_result = fit(*uninterrupted, whole_optimiser, train, test, resume_options(whole, 4));

    auto first = fresh();
    adamw first_optimiser(3e-3f);
    fit(*first, first_optimiser, train, test, resume_options(halves, 2));
    const auto checkpoint = io::read_safetensors(halves / "checkpoint.safetensors");
    CHECK(checkpoint.metadata.at("optimizer") == "adamw");
    CHECK(checkpoint.metadata.at("frozen_layers") == "0");
    CHECK(checkpoint.metadata.at("schedule") == "cosine(t_max=24, eta_min=1e-05) per step after warmup(5, 0.1)");
    CHECK(checkpoint.tensors.count("optimizer.exp_avg_sq.3.weight") == 1);
    CHECK(checkpoint.tensors.count("optimizer.exp_avg.0.0.weight") == 0); // frozen from the start

    auto resumed = fresh();
    adamw resumed_optimiser(3e-3f);
    auto options = resume_options(halves, 4);
    options.resume = halves / "checkpoint.safetensors";
    const auto resumed_result = fit(*resumed, resumed_optimiser, train, test, options);
    CHECK(values_in_shape_order(*resumed) == values_in_shape_order(*uninterrupted));
    CHECK(resumed_optimiser.learning_rate == whole_optimiser.learning_rate);
    for (const auto& [name, state] : whole_optimiser.state()) {
        CHECK(resumed_optimiser.state().at(name).buffers == state.buffers);
        CHECK(resumed_optimiser.state().at(name).steps == state.steps);
    }
    CHECK(resumed_result.test_acc == whole_result.test_acc);

    SUBCASE("another optimiser or other frozen layers cannot resume it")
    {
        auto other = fresh();
        sgd plain(0.1f);
        CHECK(error_of([&] {
                  fit(*other, plain, train, test, options);
              }).find("is a checkpoint of a run with the adamw optimiser; this run's optimiser is sgd") !=
              std::string::npos);
        other->unfreeze(0, 1);
        adamw again(3e-3f);
        CHECK(error_of([&] {
                  fit(*other, again, train, test, options);
              }).find("was made with layers 0 frozen; this run freezes none") != std::string::npos);
    }
}
