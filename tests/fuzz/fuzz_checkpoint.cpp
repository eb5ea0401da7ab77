// libFuzzer target: vgg_train's --resume path (safetensors, the run's metadata, the weights and
// the optimiser's state), with a small network so that whole valid checkpoints fit in a corpus.
#include <vgg/vgg.hpp>

#include "../../examples/training_checkpoint.hpp"
#include "fuzz_target.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size)
{
    using net_t = vgg::Sequential<vgg::shape<1, 4, 4>, vgg::VGGBlock<1, 1, 2>, vgg::Flatten, vgg::Linear<8, 3>>;
    static net_t net;
    vgg::fuzz::expect_success_or_file_error([&] {
        vgg::sgd optimiser(0.1f, 0.9f);
        const auto content = vgg::io::decode_safetensors({reinterpret_cast<const char*>(data), size}, vgg::fuzz::input_name);
        vgg_train::load_run(net, optimiser, content, vgg::fuzz::input_name, 32, 4);
    });
    return 0;
}
