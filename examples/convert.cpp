// vgg_convert: converts a model between safetensors and ONNX, checked against the network it is
// (--model, as vgg_predict names them), either direction, by the files' extensions; an int8
// network (vgg's int8 safetensors, ONNX in QDQ form) stays int8.
#include <iostream>
#include <memory>
#include <string>

#include <CLI/CLI.hpp>

#include <vgg/onnx.hpp>
#include <vgg/vgg.hpp>

#include "cli_checks.hpp"
#include "model_file.hpp"
#include "seed_presets.hpp"

namespace {

struct options {
    std::string model = "seed";
    std::size_t resize = 224, ratio = 4;
    std::filesystem::path in, out;
    bool fold_batch_norm = false;
    std::int64_t opset = 17;
};

template <class Net>
int convert(const options& opt)
{
    vgg_examples::model_file in(opt.in);
    vgg::io::onnx_export_options onnx;
    onnx.batch_norm = opt.fold_batch_norm ? vgg::io::onnx_batch_norm::folded : vgg::io::onnx_batch_norm::node;
    onnx.opset = opt.opset;
    onnx.metadata = in.metadata();
    if (in.is_int8()) {
        const auto quantised = in.int8_network<Net>();
        if (vgg_examples::is_onnx_path(opt.out))
            vgg::int8::save_onnx(quantised, opt.out, onnx);
        else
            quantised.save(opt.out);
        std::cout << "wrote " << opt.out.string() << " (" << opt.model << ", int8, " << quantised.parts().size()
                  << " layers)\n";
        return 0;
    }
    auto net = std::make_unique<Net>();
    in.load_into(*net);
    if (vgg_examples::is_onnx_path(opt.out)) {
        vgg::io::save_onnx(*net, opt.out, onnx);
    } else {
        vgg::io::save_weights(*net, opt.out, in.metadata());
    }
    std::cout << "wrote " << opt.out.string() << " (" << opt.model << ", " << Net::parameter_count << " parameters)\n";
    return 0;
}

int convert_model(const options& opt)
{
    if (opt.model == "seed")
        return vgg_examples::with_seed_preset(
            opt.resize, opt.ratio,
            [&]<std::size_t Resize, std::size_t Ratio>() {
                return convert<vgg_examples::seed_network<Resize, Ratio>>(opt);
            },
            vgg_cli::usage);
    if (opt.model == "vgg11")
        return convert<vgg::vgg11<>>(opt);
    if (opt.model == "vgg13")
        return convert<vgg::vgg13<>>(opt);
    if (opt.model == "vgg16")
        return convert<vgg::vgg16<>>(opt);
    if (opt.model == "vgg19")
        return convert<vgg::vgg19<>>(opt);
    if (opt.model == "vgg11_bn")
        return convert<vgg::vgg11_bn<>>(opt);
    if (opt.model == "vgg13_bn")
        return convert<vgg::vgg13_bn<>>(opt);
    if (opt.model == "vgg16_bn")
        return convert<vgg::vgg16_bn<>>(opt);
    if (opt.model == "vgg19_bn")
        return convert<vgg::vgg19_bn<>>(opt);
    return 2;
}

} // namespace

int main(int argc, char** argv)
{
    options opt;
    CLI::App app{"Converts a VGG between safetensors (.safetensors) and ONNX (.onnx), in either direction, checking "
                 "the file against the network it names."};
    app.add_option("--model", opt.model,
                   "seed: the seed's VGG-11 at --resize and --ratio; or torchvision's vgg11, vgg13, vgg16, vgg19, "
                   "vgg11_bn, vgg13_bn, vgg16_bn, vgg19_bn at 3x224x224")
        ->check(
            CLI::IsMember({"seed", "vgg11", "vgg13", "vgg16", "vgg19", "vgg11_bn", "vgg13_bn", "vgg16_bn", "vgg19_bn"}))
        ->capture_default_str();
    vgg_examples::add_seed_preset_options(app, opt.resize, opt.ratio, "The seed's input resolution",
                                          "The seed's channel divisor");
    app.add_flag("--fold-batch-norm", opt.fold_batch_norm, "ONNX: fold batch norm into the convolutions before it");
    app.add_option("--opset", opt.opset, "ONNX: opset of the written model")
        ->check(vgg_cli::number_in<std::int64_t>(vgg::io::onnx_export_min_opset, vgg::io::onnx_export_max_opset))
        ->capture_default_str();
    app.add_option("in", opt.in,
                   "The model to read: .safetensors (weights, a checkpoint or an int8 network) or .onnx (fp32, or int8 "
                   "in QDQ form)")
        ->required()
        ->check(CLI::ExistingFile);
    app.add_option("out", opt.out, "The file to write (.safetensors or .onnx)")->required();
    if (const auto code = vgg_cli::parse(app, argc, argv))
        return *code;
    for (const auto& path : {opt.in, opt.out})
        if (path.extension() != ".onnx" && path.extension() != ".safetensors") {
            std::cerr << "error: " << path.string() << ": name a .safetensors or an .onnx file\n";
            return 2;
        }
    try {
        return convert_model(opt);
    } catch (const std::exception& e) {
        std::cerr << "error: " << e.what() << '\n';
        return 1;
    }
}
