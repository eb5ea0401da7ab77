#pragma once
// A task a small VGG learns in a few hundred steps, for tests that need a trained network: the
// class is the quadrant of a 32x32 image that holds a bright 6x6 square, on noise.
#include <cstddef>
#include <cstdint>
#include <vector>

#include <vgg/vgg.hpp>

namespace vgg::testing {

inline void make_quadrant_batch(rng& random, tensor<shape<1, 32, 32>>& x, std::vector<int>& labels, std::size_t batch)
{
    x.resize(batch);
    labels.resize(batch);
    for (std::size_t n = 0; n < batch; ++n) {
        const int label = static_cast<int>(random.below(4));
        labels[n] = label;
        for (std::size_t i = 0; i < x.sample_size; ++i)
            x.sample(n)[i] = random.uniform(0.f, 0.3f);
        const std::size_t top = (label / 2) * 16 + random.below(10), left = (label % 2) * 16 + random.below(10);
        for (std::size_t r = 0; r < 6; ++r)
            for (std::size_t c = 0; c < 6; ++c)
                x(n, 0, top + r, left + c) = 1.f;
    }
}

struct quadrant_losses {
    float first = 0, last = 0;
};

/// `steps` steps of SGD (momentum 0.9) on batches of 32 drawn from `random`; the first and last losses.
template <class Net>
quadrant_losses train_on_quadrants(Net& net, rng& random, std::uint64_t seed, std::size_t steps,
                                   precision compute = precision::fp32, float learning_rate = 0.05f)
{
    sgd optimiser(learning_rate, 0.9f);
    tensor<shape<1, 32, 32>> x;
    tensor<shape<4>> grad;
    std::vector<int> labels;
    quadrant_losses losses;
    for (std::size_t step = 0; step < steps; ++step) {
        make_quadrant_batch(random, x, labels, 32);
        const auto result =
            softmax_cross_entropy(net.forward(x, {mode::train, mix64(seed, step), 0, compute}), labels, grad);
        net.backward(grad);
        optimiser.step(net);
        if (step == 0)
            losses.first = result.loss;
        losses.last = result.loss;
    }
    return losses;
}

} // namespace vgg::testing
