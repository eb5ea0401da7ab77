// libFuzzer target: the IDX reader, plain and gzip-compressed, at the two ranks Fashion-MNIST uses.
#include <vgg/data/idx.hpp>

#include "fuzz_target.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size)
{
    const std::span<const std::uint8_t> bytes(data, size);
    for (std::size_t rank : {1, 3})
        vgg::fuzz::expect_success_or_file_error([&] { vgg::data::decode_idx(bytes, rank, vgg::fuzz::input_name); });
    return 0;
}
