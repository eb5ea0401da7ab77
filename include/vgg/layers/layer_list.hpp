#pragma once
// Lists of layer specs joined into one Sequential, for networks built from parts (blocks, a
// pool, a classifier).
#include "vgg/layers/sequential.hpp"

namespace vgg {

namespace detail {

template <class... Lists>
struct concat_lists;
template <class... A>
struct concat_lists<type_list<A...>> {
    using type = type_list<A...>;
};
template <class... A, class... B, class... Rest>
struct concat_lists<type_list<A...>, type_list<B...>, Rest...> : concat_lists<type_list<A..., B...>, Rest...> {};

template <class Input, class List>
struct sequential_of;
template <class Input, class... Specs>
struct sequential_of<Input, type_list<Specs...>> {
    using type = Sequential<Input, Specs...>;
};

} // namespace detail

/// Sequential<Input, ...> of the specs of every list in order:
/// sequential_of_lists<shape<512, 7, 7>, layer_list<Flatten>, vgg_classifier<512 * 7 * 7, 10>>.
template <class Input, class... Lists>
using sequential_of_lists = typename detail::sequential_of<Input, typename detail::concat_lists<Lists...>::type>::type;

/// A list of layer specs, one part of a network for sequential_of_lists.
template <class... Specs>
using layer_list = detail::type_list<Specs...>;

} // namespace vgg
