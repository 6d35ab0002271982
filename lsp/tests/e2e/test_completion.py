"""textDocument/completion at the positions an editor asks about."""

import re

import pytest
from lsprotocol import types

from helpers import (
    BLOCKS,
    MNIST,
    MNIST_PATH,
    OPTIMIZERS,
    SCHEDULES,
    STD_MODULES,
    TINY,
    TOP_LEVEL_KEYWORDS,
    TRAIN_FIELDS,
    completion_items,
    cursor,
    inserted_text,
    labels,
    markup_text,
    replace_once,
    request,
)


async def complete(
    client, open_doc, marked: str, trigger: str | None = None, directory=None, name="doc.dnn"
):
    """Opens the text (without its `$0`) and asks for completion at `$0`."""
    text, pos = cursor(marked)
    doc, mark = open_doc(name, text, directory=directory)
    if trigger is None:
        context = types.CompletionContext(trigger_kind=types.CompletionTriggerKind.Invoked)
    else:
        context = types.CompletionContext(
            trigger_kind=types.CompletionTriggerKind.TriggerCharacter,
            trigger_character=trigger,
        )
    result = await request(
        client.text_document_completion_async(
            types.CompletionParams(text_document=doc.ident, position=pos, context=context)
        )
    )
    return completion_items(result)


def by_label(items, label):
    found = [i for i in items if i.label == label]
    assert found, f"no completion item {label!r} among {sorted(labels(items))}"
    return found[0]


async def test_top_level_keywords(client, open_doc):
    items = await complete(client, open_doc, TINY + "\n$0")
    assert labels(items) >= TOP_LEVEL_KEYWORDS


async def test_top_level_keywords_in_an_empty_file(client, open_doc):
    items = await complete(client, open_doc, "$0")
    assert labels(items) >= TOP_LEVEL_KEYWORDS


async def test_std_modules_after_use_std(client, open_doc):
    items = await complete(client, open_doc, "use std::$0\n\n" + TINY, trigger=":")
    assert labels(items) >= STD_MODULES


@pytest.mark.parametrize(
    "line, trigger, expected",
    [
        ("use std::nn::{$0}", None, {"Dense"}),  # `{` is no trigger: completion invoked
        ("use std::nn::{$0", None, {"Dense"}),  # not closed yet
        ("use std::nn::$0", ":", {"Dense"}),
        ("use std::activations::{relu, $0}", " ", {"gelu", "softmax", "sigmoid", "log_softmax"}),
        ("use std::losses::$0", ":", {"cross_entropy", "mse", "mae", "bce_logits"}),
        ("use std::regularization::{$0}", None, {"dropout", "l1_penalty", "l2_penalty"}),
        ("use std::shape::$0", ":", {"flatten"}),
    ],
)
async def test_std_module_members(client, open_doc, line, trigger, expected):
    items = await complete(client, open_doc, line + "\n\n" + TINY, trigger=trigger)
    assert labels(items) >= expected, sorted(labels(items))


def param_name(item: types.CompletionItem) -> str:
    return item.label.split("=")[0].strip()


@pytest.mark.parametrize(
    "call, trigger, expected",
    [
        ("Dense(784, $0)", " ", {"inp", "out", "bias"}),
        ("Dense($0)", "(", {"inp", "out", "bias"}),
        ("Dense(784, 256,$0)", ",", {"inp", "out", "bias"}),
        ("Dense(784, 256, $0", " ", {"inp", "out", "bias"}),  # not closed yet
    ],
)
async def test_hyperparameter_names_in_a_layer_call(client, open_doc, call, trigger, expected):
    marked = replace_once(
        TINY, "    fc2 = Dense(256, 10)\n", f"    fc2 = Dense(256, 10)\n    fc3 = {call}\n"
    )
    items = await complete(client, open_doc, marked, trigger=trigger)
    named = {
        param_name(i): i
        for i in items
        if i.kind in (types.CompletionItemKind.Field, types.CompletionItemKind.Property)
    }
    assert set(named) >= expected, f"parameter items: {sorted(named)}; all: {sorted(labels(items))}"
    for name in expected:
        text = inserted_text(named[name])
        assert re.match(rf"{name}\s*=", text), f"{name}: inserts {text!r}, expected `{name} = `"


async def test_hyperparameter_names_of_a_user_layer(client, open_doc):
    marked = replace_once(
        BLOCKS, "    b2 = Block(16)\n", "    b2 = Block(16)\n    b3 = Block($0)\n"
    )
    items = await complete(client, open_doc, marked, trigger="(")
    named = {
        param_name(i)
        for i in items
        if i.kind in (types.CompletionItemKind.Field, types.CompletionItemKind.Property)
    }
    assert "dim" in named, sorted(labels(items))


async def test_names_in_scope_in_a_method(client, open_doc):
    marked = replace_once(TINY, "        fc2(h)", "        $0fc2(h)")
    items = await complete(client, open_doc, marked)
    got = labels(items)
    # the parameter, the `let`, the sub-layers, the imports and primitives
    assert got >= {"x", "h", "fc1", "fc2", "relu", "Dense", "sum", "matmul", "exp"}, sorted(got)
    # std functions that were not imported are not offered (softmax is a builtin)
    assert not got & {"sigmoid", "gelu", "cross_entropy"}, sorted(got)

    relu = by_label(items, "relu")
    assert re.search(r"relu\(x: (f32)?\[\.\.S\]\)", relu.detail or ""), (
        f"relu's detail: {relu.detail!r}"
    )
    assert "Rectified linear unit" in markup_text(relu.documentation), relu.documentation
    dense = by_label(items, "Dense")
    assert "inp: Int" in (dense.detail or ""), f"Dense's detail: {dense.detail!r}"
    assert "Fully connected layer" in markup_text(dense.documentation), dense.documentation


async def test_names_in_scope_with_the_files_own_declarations(client, open_doc):
    marked = replace_once(BLOCKS, "        double(y)", "        $0double(y)")
    items = await complete(client, open_doc, marked)
    got = labels(items)
    assert got >= {"x", "y", "b1", "b2", "Block", "double", "Dense", "exp"}, sorted(got)
    # members and hyperparameters of another layer are not in scope here
    assert not got & {"fc", "dim"}, sorted(got)

    double = by_label(items, "double")
    assert re.search(r"double\(x: (f32)?\[\.\.S\]\)", double.detail or ""), (
        f"detail: {double.detail!r}"
    )
    assert "Scales its input by two" in markup_text(double.documentation)
    block = by_label(items, "Block")
    assert "dim: Int" in (block.detail or ""), f"Block's detail: {block.detail!r}"
    assert "A residual block" in markup_text(block.documentation)


async def test_train_fields_in_an_empty_train_block(client, open_doc):
    start = MNIST.index("train Mlp(")
    marked = MNIST[:start] + "train Mlp(hidden = 256) on mnist {\n    $0\n}\n"
    items = await complete(
        client, open_doc, marked, directory=MNIST_PATH.parent, name=MNIST_PATH.name
    )
    assert labels(items) >= TRAIN_FIELDS, sorted(labels(items))


async def test_train_fields_not_yet_set(client, open_doc):
    marked = replace_once(MNIST, "    seed       = 42\n", "    seed       = 42\n    $0\n")
    items = await complete(
        client, open_doc, marked, directory=MNIST_PATH.parent, name=MNIST_PATH.name
    )
    assert labels(items) >= {"schedule", "early_stop", "shuffle"}, sorted(labels(items))


async def test_optimizers(client, open_doc):
    marked = replace_once(MNIST, "optimizer  = adam(lr = 1e-3)", "optimizer  = $0")
    items = await complete(
        client, open_doc, marked, trigger=" ", directory=MNIST_PATH.parent, name=MNIST_PATH.name
    )
    assert labels(items) >= OPTIMIZERS, sorted(labels(items))


async def test_schedules(client, open_doc):
    marked = replace_once(
        MNIST, "    seed       = 42\n", "    seed       = 42\n    schedule = $0\n"
    )
    items = await complete(
        client, open_doc, marked, trigger=" ", directory=MNIST_PATH.parent, name=MNIST_PATH.name
    )
    assert labels(items) >= SCHEDULES, sorted(labels(items))


async def test_members_right_after_a_dot(client, open_doc):
    # The line does not parse yet: `fc1.` with nothing after the dot.
    marked = replace_once(MNIST, "x |> fc1 |> relu |> fc2 |> relu |> head", "fc1.$0")
    items = await complete(client, open_doc, marked, trigger=".")
    assert {"forward", "W", "b"} <= labels(items), sorted(labels(items))


async def test_details_are_one_line_and_space_triggers_nothing(client, open_doc):
    caps = client.init_result.capabilities.completion_provider
    assert " " not in (caps.trigger_characters or [])
    items = await complete(client, open_doc, "use std::nn::$0\n\n" + TINY, trigger=":")
    conv = by_label(items, "Conv2d")
    assert "\n" not in (conv.detail or ""), repr(conv.detail)
    assert "inp: Int" in (conv.detail or ""), repr(conv.detail)
