// Data-parallel training over MPI, run by ctest under mpirun with 1 and with 2 ranks: every
// rank trains its share of each global batch and must end with the weights one process gets
// training on the whole batches (exactly with 1 rank; up to summation order with more).
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include <vgg/distributed/mpi.hpp>
#include <vgg/vgg.hpp>

using namespace vgg;

namespace {

// Dropout included: its masks must follow the global sample index across shards.
using small_net = Sequential<shape<1, 16, 16>, VGGBlock<1, 1, 4>, VGGBlock<1, 4, 8>, Flatten, Linear<8 * 4 * 4, 32>,
                             ReLU, Dropout<50>, Linear<32, 4>>;

constexpr std::size_t global_batch = 12, steps = 6;

void make_batch(std::size_t step, tensor<shape<1, 16, 16>>& x, std::vector<int>& labels)
{
    rng random(mix64(99, step));
    x.resize(global_batch);
    labels.resize(global_batch);
    for (std::size_t n = 0; n < global_batch; ++n) {
        labels[n] = static_cast<int>(random.below(4));
        for (std::size_t i = 0; i < x.sample_size; ++i)
            x.sample(n)[i] = random.uniform(0.f, 1.f) + (i % 4 == std::size_t(labels[n]) ? 0.5f : 0.f);
    }
}

std::vector<float> weights_of(small_net& net)
{
    std::vector<float> values;
    net.visit_parameters([&](const parameter_view& p) { values.insert(values.end(), p.value.begin(), p.value.end()); });
    return values;
}

// One process on whole batches: the reference.
std::vector<float> train_alone()
{
    small_net net;
    rng random(5);
    net.initialize(weight_init::xavier_uniform, random);
    sgd optimiser(0.1f, 0.9f, 1e-4f);
    tensor<shape<1, 16, 16>> x;
    tensor<shape<4>> grad;
    std::vector<int> labels;
    for (std::size_t step = 0; step < steps; ++step) {
        make_batch(step, x, labels);
        softmax_cross_entropy(net.forward(x, {mode::train, mix64(7, step)}), labels, grad);
        net.backward(grad);
        optimiser.step(net);
    }
    return weights_of(net);
}

// Every rank on its share of the same batches, gradients summed over ranks.
std::vector<float> train_together(int rank, int ranks, std::size_t bucket_bytes)
{
    small_net net;
    rng random(rank == 0 ? 5 : 1000 + std::uint64_t(rank)); // the other ranks' start must not matter
    net.initialize(weight_init::xavier_uniform, random);
    distributed::broadcast_parameters(net);
    distributed::gradient_allreduce<small_net> gradient_sum(net, bucket_bytes);
    sgd optimiser(0.1f, 0.9f, 1e-4f);
    tensor<shape<1, 16, 16>> whole, x;
    tensor<shape<4>> grad;
    std::vector<int> labels;
    for (std::size_t step = 0; step < steps; ++step) {
        make_batch(step, whole, labels);
        const auto mine = distributed::shard_of(global_batch, rank, ranks);
        x.resize(mine.size());
        std::copy(whole.sample(mine.begin), whole.sample(mine.end), x.data());
        const std::vector<int> my_labels(labels.begin() + long(mine.begin), labels.begin() + long(mine.end));
        softmax_cross_entropy(net.forward(x, {mode::train, mix64(7, step), mine.begin}), my_labels, grad);
        net.backward(grad, nullptr, gradient_sum.begin(float(mine.size()) / float(global_batch)));
        gradient_sum.finish();
        optimiser.step(net);
    }
    return weights_of(net);
}

int rank_of_world()
{
    int rank = 0;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    return rank;
}

int size_of_world()
{
    int size = 0;
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    return size;
}

} // namespace

TEST_CASE("shards are contiguous, cover the batch and differ in size by at most one")
{
    for (int ranks : {1, 2, 3, 5})
        for (std::size_t count : {5, 12, 13}) {
            std::size_t expected_begin = 0;
            for (int rank = 0; rank < ranks; ++rank) {
                const auto mine = distributed::shard_of(count, rank, ranks);
                CHECK(mine.begin == expected_begin);
                CHECK(mine.size() >= count / std::size_t(ranks));
                CHECK(mine.size() <= count / std::size_t(ranks) + 1);
                expected_begin = mine.end;
            }
            CHECK(expected_begin == count);
        }
}

TEST_CASE("data-parallel SGD over the ranks ends with one process's weights")
{
    const int rank = rank_of_world(), ranks = size_of_world();
    const auto alone = train_alone();
    for (std::size_t bucket_bytes : {std::size_t(1) << 30, std::size_t(256)}) { // one bucket; one per tensor
        CAPTURE(bucket_bytes);
        const auto together = train_together(rank, ranks, bucket_bytes);
        REQUIRE(together.size() == alone.size());
        if (ranks == 1) {
            CHECK(together == alone); // nothing is summed: bit for bit the same
        } else {
            double largest = 0, scale = 0;
            for (std::size_t i = 0; i < alone.size(); ++i) {
                largest = std::max(largest, double(std::abs(together[i] - alone[i])));
                scale = std::max(scale, double(std::abs(alone[i])));
            }
            MESSAGE("largest difference from one process: " << largest << " (largest weight " << scale << ")");
            CHECK(largest < 1e-5 * scale);
            CHECK(together != std::vector<float>(together.size())); // it trained at all
        }
        // Every rank holds the same weights, bit for bit.
        std::vector<float> first = together;
        MPI_Bcast(first.data(), int(first.size()), MPI_FLOAT, 0, MPI_COMM_WORLD);
        CHECK(first == together);
    }
}

TEST_CASE("counts and sums are added over the ranks")
{
    const int rank = rank_of_world(), ranks = size_of_world();
    std::vector<double> values{1.0, double(rank)};
    distributed::sum_over_ranks(values);
    CHECK(values[0] == double(ranks));
    CHECK(values[1] == double(ranks * (ranks - 1) / 2));
}

int main(int argc, char** argv)
{
    const distributed::mpi_environment mpi(argc, argv);
    doctest::Context context(argc, argv);
    int failed = context.run();
    // A rank whose checks failed fails the whole run.
    MPI_Allreduce(MPI_IN_PLACE, &failed, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
    return failed;
}
