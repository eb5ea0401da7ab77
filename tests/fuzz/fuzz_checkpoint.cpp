// libFuzzer target: vgg::fit's resume path (vgg_train --resume) (safetensors, the run's metadata, the weights and
// the optimiser's state), with a small network so that whole valid checkpoints fit in a corpus.
#include <vgg/train/fit.hpp>
#include <vgg/vgg.hpp>

#include "fuzz_target.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size)
{
    using net_t = vgg::Sequential<vgg::shape<1, 4, 4>, vgg::VGGBlock<1, 1, 2>, vgg::Flatten, vgg::Linear<8, 3>>;
    static net_t net;
    vgg::fuzz::expect_success_or_file_error([&] {
        vgg::sgd optimiser(0.1f, 0.9f);
        const auto content =
            vgg::io::decode_safetensors({reinterpret_cast<const char*>(data), size}, vgg::fuzz::input_name);
        vgg::load_run(net, optimiser, content, vgg::fuzz::input_name, {{"resize", "32"}, {"ratio", "4"}});
    });
    return 0;
}
