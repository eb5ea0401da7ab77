#include <doctest/doctest.h>

#include "test_support.hpp"

#include <cstring>
#include <limits>
#include <filesystem>
#include <fstream>
#include <functional>

#include <sys/wait.h>
#include <unistd.h>

#include "gradient_check.hpp"
#include <vgg/io/output_folder.hpp>
#include <vgg/io/safetensors.hpp>
#include <vgg/train/checkpoint.hpp>
#include <vgg/vgg.hpp>

using namespace vgg;
using vgg::testing::error_of;
using vgg::testing::scratch_file;
using vgg::testing::write_bytes;
namespace fs = std::filesystem;

namespace {

using tiny_net = Sequential<shape<1, 4, 4>, VGGBlock<1, 1, 2>, Flatten, Linear<8, 3>>;

std::string file_bytes(const fs::path& path)
{
    std::ifstream in(path, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// A safetensors file from a header written by hand and `data_bytes` bytes of data.
std::string handmade(const std::string& header, std::size_t data_bytes)
{
    std::string bytes(8, '\0');
    const std::uint64_t length = header.size();
    std::memcpy(bytes.data(), &length, 8);
    return bytes + header + std::string(data_bytes, '\0');
}

std::vector<float> all_values(tiny_net& net)
{
    std::vector<float> values;
    net.visit_parameters([&](const parameter_view& p) { values.insert(values.end(), p.value.begin(), p.value.end()); });
    return values;
}

} // namespace

TEST_CASE("weights round-trip through safetensors under state_dict names")
{
    tiny_net saved, loaded;
    rng random(1);
    saved.initialize(weight_init::xavier_uniform, random);
    const auto path = scratch_file("round-trip.safetensors");
    io::save_weights(saved, path, {{"resize", "4"}});
    const auto content = io::read_safetensors(path);
    CHECK(content.metadata.at("resize") == "4");
    CHECK(content.tensors.at("0.0.weight").shape == std::vector<std::size_t>{2, 1, 3, 3});
    CHECK(content.tensors.at("2.weight").shape == std::vector<std::size_t>{3, 8});
    CHECK(content.tensors.size() == 4);
    // Linear stores its weight transposed, [8, 3]; the file has PyTorch's [3, 8].
    const auto& file_weight = content.tensors.at("2.weight").values;
    const auto& stored_weight = saved.layer<2>().weight.value;
    for (std::size_t o = 0; o < 3; ++o)
        for (std::size_t i = 0; i < 8; ++i)
            CHECK(file_weight[o * 8 + i] == stored_weight[i * 3 + o]);
    io::load_weights(loaded, path);
    CHECK(all_values(loaded) == all_values(saved));
    std::uint64_t header_length;
    std::memcpy(&header_length, file_bytes(path).data(), 8);
    CHECK(header_length % 8 == 0);
}

TEST_CASE("half and bfloat16 tensors are converted to float on load")
{
    const std::string header =
        R"({"h":{"dtype":"F16","shape":[4],"data_offsets":[0,8]},"b":{"dtype":"BF16","shape":[2],"data_offsets":[8,12]}})";
    auto bytes = handmade(header, 12);
    const std::uint16_t halves[4] = {0x3c00, 0xc000, 0x0001, 0x7c00}; // 1, -2, 2^-24, inf
    const std::uint16_t bfloats[2] = {0x3f80, 0x4049};                // 1, 3.140625
    std::memcpy(bytes.data() + 8 + header.size(), halves, 8);
    std::memcpy(bytes.data() + 8 + header.size() + 8, bfloats, 4);
    const auto path = scratch_file("halves.safetensors");
    write_bytes(path, bytes);
    const auto content = io::read_safetensors(path);
    CHECK(content.tensors.at("h").values == std::vector<float>{1.f, -2.f, std::ldexp(1.f, -24), INFINITY});
    CHECK(content.tensors.at("b").values == std::vector<float>{1.f, 3.140625f});
}

TEST_CASE("a damaged or foreign file is a clear error, and the network is left untouched")
{
    tiny_net good, net;
    rng random(2);
    good.initialize(weight_init::xavier_uniform, random);
    net.initialize(weight_init::xavier_uniform, random);
    const auto before = all_values(net);
    const auto good_path = scratch_file("good.safetensors");
    io::save_weights(good, good_path);
    const auto good_bytes = file_bytes(good_path);
    const auto path = scratch_file("bad.safetensors");
    auto load_error = [&](const std::string& bytes) {
        write_bytes(path, bytes);
        const auto message = error_of([&] { io::load_weights(net, path); });
        CHECK(all_values(net) == before);
        return message;
    };
    const std::string p = path.string() + ": ";

    CHECK(error_of([&] {
              io::read_safetensors(scratch_file("missing.safetensors"));
          }).find("missing.safetensors: cannot open") != std::string::npos);
    CHECK(load_error("abc") == p + "not a safetensors file: 3 bytes, shorter than the 8-byte header length");
    CHECK(load_error(good_bytes.substr(0, 100)).find(p + "truncated or not a safetensors file: header length") == 0);
    CHECK(load_error(good_bytes.substr(0, good_bytes.size() - 4)).find("outside the") != std::string::npos);
    CHECK(load_error(std::string("\xff\xff\xff\xff\xff\xff\xff\xff", 8) + "{}")
              .find("header length 18446744073709551615 exceeds") != std::string::npos);
    CHECK(load_error(handmade("{not json", 0)) == p + "the safetensors header is not a JSON object");
    CHECK(load_error(handmade(R"({"x":{"dtype":"U8","shape":[8],"data_offsets":[0,8]}})", 8)) ==
          p + "tensor \"x\" has dtype U8; only F32, F16, BF16, I64, I32 and I8 can be read");
    CHECK(load_error(handmade(R"({"x":{"dtype":"F32","shape":[2],"data_offsets":[0,4]}})", 4)) ==
          p + "tensor \"x\" has 4 bytes of data, but its shape and dtype need 8");
    CHECK(load_error(handmade(R"({"x":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}})", 4)) ==
          p + "tensor \"x\": a shape entry is not a non-negative integer");
    CHECK(load_error(handmade(R"({"x":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,4]}})", 4)) ==
          p + "tensor \"x\" has an impossibly large shape");
    CHECK(load_error(handmade(R"({"x":{"dtype":"F32","shape":[1],"data_offsets":[0,18446744073709551615]}})", 4))
              .find("outside the 4 bytes of data") != std::string::npos);
    CHECK(
        load_error(handmade(
            R"({"x":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"y":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})",
            8)) == p + "tensor \"y\" overlaps another tensor in the data section");
    CHECK(load_error(handmade(R"({"x":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})", 8)) ==
          p + "tensor \"x\" leaves a gap before it in the data section");
    CHECK(load_error(handmade(R"({"x":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})", 8)) ==
          p + "4 bytes after the last tensor belong to no tensor");
    // A name given twice (nlohmann's parser would keep the last one): with the offsets swapped,
    // the tensors would load each other's values.
    CHECK(
        load_error(handmade(
            R"({"x":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"y":{"dtype":"F32","shape":[1],"data_offsets":[4,8]},"x":{"dtype":"F32","shape":[1],"data_offsets":[4,8]},"y":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})",
            8)) == p + "the safetensors header names \"x\" twice (a JSON object with a repeated key)");
    CHECK(load_error(handmade(R"({"__metadata__":{"epoch":"1","epoch":"2"}})", 0)) ==
          p + "the safetensors header names \"epoch\" twice (a JSON object with a repeated key)");
    // Only regular files are read: a device would be read until memory runs out.
    CHECK(error_of([&] { io::read_safetensors("/dev/zero"); }) ==
          "/dev/zero: is not a regular file (a folder, device or pipe): vgg reads only regular files");
    CHECK(error_of([&] { io::read_safetensors(fs::temp_directory_path()); }).find("is not a regular file") !=
          std::string::npos);
    write_bytes(path, std::string(100, 'x'));
    CHECK(error_of([&] { io::read_file_bytes(path, 99); }) == p + "is 100 bytes, more than the 99 this reader accepts");

    // Well-formed files that do not fit the network.
    auto tensors = io::finite_parameter_tensors(good, path);
    io::write_safetensors(path, {tensors.begin(), tensors.end() - 1});
    CHECK(error_of([&] { io::load_weights(net, path); }) ==
          p + "tensor \"2.bias\" [3] is missing (is this a checkpoint of another architecture?)");
    const std::vector<float> extra_values(5);
    tensors.push_back({"extra", {5}, extra_values});
    io::write_safetensors(path, tensors);
    CHECK(error_of([&] { io::load_weights(net, path); }) ==
          p + "tensor \"extra\" [5] is not a parameter of this network");
    tensors.back().order = storage_order::transposed;
    CHECK(error_of([&] { io::write_safetensors(path, tensors); }) ==
          p + "tensor \"extra\" is stored transposed but is not an F32 matrix");
    tensors.pop_back();
    tensors[0].shape = {1, 2, 3, 3};
    io::write_safetensors(path, tensors);
    CHECK(error_of([&] { io::load_weights(net, path); }) ==
          p + "tensor \"0.0.weight\" has shape [1, 2, 3, 3], but this network needs [2, 1, 3, 3]");
    tensors[0].shape = {2, 1, 3, 3};
    std::vector<float> with_nan(tensors[2].values.size()); // in the file's order: Linear stores its weight transposed
    copy_in_shape_order(tensors[2].shape, tensors[2].order, tensors[2].values, with_nan.data());
    with_nan[5] = std::numeric_limits<float>::quiet_NaN();
    tensors[2] = {tensors[2].name, tensors[2].shape, with_nan};
    io::write_safetensors(path, tensors);
    CHECK(error_of([&] { io::load_weights(net, path); }) ==
          p + "tensor \"2.weight\" holds nan at index 5: weights must be finite");
    CHECK(all_values(net) == before);
}

TEST_CASE("saving replaces a file atomically and never leaves a temporary behind")
{
    tiny_net net;
    rng random(3);
    net.initialize(weight_init::xavier_uniform, random);
    const auto dir = scratch_file("atomic");
    fs::create_directories(dir);
    io::save_weights(net, dir / "w.safetensors");
    io::save_weights(net, dir / "w.safetensors");
    CHECK(std::distance(fs::directory_iterator(dir), fs::directory_iterator{}) == 1);
    CHECK(error_of([&] {
              io::save_weights(net, dir / "no-such-dir" / "w.safetensors");
          }).find("cannot create temporary file") != std::string::npos);
}

TEST_CASE("an output folder: one run holds it, temporaries of dead runs are removed, files are tried for writing")
{
    const auto dir = scratch_file("output_folder");
    fs::remove_all(dir);
    fs::create_directories(dir);
    {
        const io::folder_lock held(dir);
        CHECK(file_bytes(dir / ".vgg-lock") == std::to_string(::getpid()));
        const std::string refused = error_of([&] { io::folder_lock again(dir); });
        CHECK(refused == dir.string() + ": is in use by another run (process " + std::to_string(::getpid()) +
                             "): two runs writing one folder would overwrite each other's files; wait for it to end "
                             "or choose another folder");
    }
    CHECK(error_of([&] { io::folder_lock again(dir); }) == "no error"); // released with its holder

    // A process that has ended (a child that exited) left a checkpoint half-written; a live one's stays.
    const pid_t child = ::fork();
    if (child == 0)
        ::_exit(0);
    REQUIRE(child > 0);
    int status = 0;
    ::waitpid(child, &status, 0);
    write_bytes(dir / ("checkpoint.safetensors.tmp" + std::to_string(child)), "partial");
    write_bytes(dir / ("metrics.csv.tmp" + std::to_string(::getpid())), "being written");
    write_bytes(dir / "notes.tmpx", "not ours");
    CHECK(io::remove_stale_temporaries(dir) == 1);
    CHECK(!fs::exists(dir / ("checkpoint.safetensors.tmp" + std::to_string(child))));
    CHECK(fs::exists(dir / ("metrics.csv.tmp" + std::to_string(::getpid()))));
    CHECK(fs::exists(dir / "notes.tmpx"));

    CHECK(error_of([&] { io::check_writable(dir / "curves.svg"); }) == "no error");
    CHECK(!fs::exists(dir / "curves.svg"));
    CHECK(error_of([&] { io::check_writable(dir); }) == dir.string() + ": is a folder, not a file to write");
    CHECK(error_of([&] {
              io::check_writable("/proc/vgg-curves.svg");
          }).find("/proc/vgg-curves.svg: cannot be written: ") == 0);
}

TEST_CASE("a checkpoint keeps the momentum buffers and the step count")
{
    tiny_net net, restored;
    rng random(4);
    net.initialize(weight_init::xavier_uniform, random);
    sgd optimiser(0.1f, 0.9f), restored_optimiser(0.1f, 0.9f);
    net.visit_parameters([&](const parameter_view& p) { vgg::testing::fill_uniform(p.grad, random); });
    optimiser.step(net);
    optimiser.step(net);
    const auto path = scratch_file("checkpoint.safetensors");
    save_checkpoint(net, optimiser, path, {{"epoch", "2"}});
    const auto metadata = load_checkpoint(restored, restored_optimiser, path);
    CHECK(metadata.at("epoch") == "2");
    CHECK(restored_optimiser.steps() == 2);
    REQUIRE(restored_optimiser.state().size() == optimiser.state().size());
    for (const auto& [name, state] : optimiser.state()) {
        CHECK(restored_optimiser.state().at(name).buffers == state.buffers);
        CHECK(restored_optimiser.state().at(name).steps == 2);
    }
    CHECK(all_values(restored) == all_values(net));
    // The Linear's momentum, stored as its weight is ([8, 3]), is in PyTorch's order in the file.
    const auto content = io::read_safetensors(path);
    const auto& file_momentum = content.tensors.at(optimizer_prefix + "momentum_buffer.2.weight").values;
    const auto& stored_momentum = optimiser.state().at("2.weight").buffers.at(0);
    for (std::size_t o = 0; o < 3; ++o)
        for (std::size_t i = 0; i < 8; ++i)
            CHECK(file_momentum[o * 8 + i] == stored_momentum[i * 3 + o]);
}

TEST_CASE("optimiser state of another dtype, shape or with a NaN is refused and nothing is loaded")
{
    tiny_net net, restored;
    rng random(6);
    net.initialize(weight_init::xavier_uniform, random);
    sgd optimiser(0.1f, 0.9f);
    net.visit_parameters([&](const parameter_view& p) { vgg::testing::fill_uniform(p.grad, random); });
    optimiser.step(net);
    const auto path = scratch_file("state-checkpoint.safetensors");
    save_checkpoint(net, optimiser, path, {{"epoch", "1"}});
    const auto good = io::read_safetensors(path);
    const std::string name = optimizer_prefix + "momentum_buffer.2.bias";
    const auto before = all_values(restored);
    auto refused = [&](auto change) {
        auto content = good;
        change(content.tensors.at(name));
        sgd fresh(0.1f, 0.9f);
        const auto message = error_of([&] { load_checkpoint(restored, fresh, content, path); });
        CHECK(fresh.state().empty());
        CHECK(all_values(restored) == before);
        return message;
    };
    // Found by fuzz_checkpoint: an integer tensor has no float values to copy.
    CHECK(refused([](io::stored_tensor& t) {
              t = {t.shape, {}, "I64", {1, 2, 3}};
          }) == path.string() + ": optimiser state \"" + name + "\" has dtype I64, not a floating-point one");
    CHECK(refused([](io::stored_tensor& t) { t.values[2] = std::numeric_limits<float>::quiet_NaN(); }) ==
          path.string() + ": optimiser state \"" + name + "\" holds a NaN or an infinity at index 2");
    CHECK(refused([](io::stored_tensor& t) {
              t = {{1, 3}, {1, 2, 3}, "F32", {}};
          }) == path.string() + ": optimiser state \"" + name + "\" has shape [1, 3], not the parameter's [3]");
}

TEST_CASE("a network with a NaN or infinite parameter is never saved as a checkpoint or as weights")
{
    tiny_net net;
    rng random(5);
    net.initialize(weight_init::xavier_uniform, random);
    sgd optimiser(0.1f);
    const auto path = scratch_file("good-checkpoint.safetensors");
    save_checkpoint(net, optimiser, path, {{"epoch", "1"}});
    const auto good = file_bytes(path);
    CHECK(first_non_finite_parameter(net).empty());
    net.visit_parameters([](const parameter_view& p) {
        if (p.name == "2.bias")
            p.value[1] = std::numeric_limits<float>::infinity();
    });
    CHECK(first_non_finite_parameter(net) == "2.bias");
    CHECK(error_of([&] {
              save_checkpoint(net, optimiser, path, {{"epoch", "2"}});
          }) == path.string() + ": not written: parameter \"2.bias\" holds a NaN or an infinity");
    CHECK(file_bytes(path) == good);
    CHECK(error_of([&] { io::save_weights(net, path); }) ==
          path.string() + ": not written: parameter \"2.bias\" holds a NaN or an infinity");
    CHECK(file_bytes(path) == good);
}
