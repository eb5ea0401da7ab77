#pragma once
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <numeric>
#include <ostream>
#include <span>
#include <stdexcept>
#include <vector>

#include "vgg/core/layer.hpp"
#include "vgg/core/precision.hpp"
#include "vgg/core/tensor.hpp"
#include "vgg/data/dataset.hpp"
#include "vgg/detail/parallel.hpp"
#include "vgg/train/loss.hpp"
#include "vgg/train/progress.hpp"
#include "vgg/train/team.hpp"

namespace vgg {

/// Accuracy of `net` on `test` in evaluation mode; each process of `team` tests its share and
/// the counts are summed.
template <class Net, data::dataset_for<typename Net::input_shape> Test, class Team = single_process>
double evaluate_accuracy(Net& net, const Test& test, std::size_t batch_size, vgg::precision precision,
                         const Team& team = {}, std::ostream* log = nullptr, bool terminal = false)
{
    if (batch_size == 0)
        throw std::invalid_argument("evaluate_accuracy: the batch size is 0");
    if (test.size() == 0)
        throw std::invalid_argument("evaluate_accuracy: the test set is empty");
    tensor<typename Net::input_shape> images;
    std::vector<int> labels;
    tensor<typename Net::output_shape> grad;
    const auto mine = detail::partition(test.size(), team.size(), team.rank());
    std::vector<std::size_t> order(mine.size());
    std::iota(order.begin(), order.end(), mine.begin);
    const std::size_t batches = (order.size() + batch_size - 1) / batch_size;
    std::ostream quiet(nullptr);
    progress_reporter progress(log ? *log : quiet, terminal, "  test", batches);
    double correct = 0;
    for (std::size_t b = 0; b < batches; ++b) {
        const std::size_t begin = b * batch_size, count = std::min(batch_size, order.size() - begin);
        test.load_batch(std::span(order).subspan(begin, count), images, labels);
        correct +=
            double(softmax_cross_entropy(net.forward(images, {mode::eval, 0, 0, precision}), labels, grad).correct);
        progress.update(b + 1, begin + count, NAN);
    }
    progress.finish();
    team.sum(std::span(&correct, 1));
    return correct / double(test.size());
}

} // namespace vgg
