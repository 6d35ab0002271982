//! The catalogue of error codes: each code, a one-line title and a long explanation.
//! E0xxx are reported by `check` with a source span; E1xxx by the commands that run a
//! program (`train`, `eval`, `predict`, `bench`, `compile`), naming a file, a step or
//! a sample instead.
//!
//! The long explanations live in `explain/EXXXX.md` beside this crate and are embedded
//! at build time; `dnnc explain EXXXX` prints them. A test checks that every code has
//! an explanation and that `spec/errors.md` documents every code.

use std::fmt;

/// An error code such as `E0300`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Code(pub &'static str);

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

macro_rules! codes {
    ($($name:ident = $code:literal, $title:literal;)*) => {
        $(
            #[doc = $title]
            pub const $name: Code = Code($code);
        )*
        /// Every code with its title and long explanation, in numeric order.
        pub const CODES: &[(Code, &str, &str)] = &[
            $((Code($code), $title, include_str!(concat!("../explain/", $code, ".md"))),)*
        ];
    };
}

codes! {
    INVALID_SOURCE_BYTES = "E0001", "the source file is not valid UTF-8 text or holds control bytes";
    SYNTAX = "E0002", "syntax error";
    UNTERMINATED_COMMENT = "E0003", "unterminated block comment";
    UNTERMINATED_STRING = "E0004", "unterminated string literal";
    NESTING_TOO_DEEP = "E0005", "brackets nested too deeply";
    INT_TOO_LARGE = "E0006", "integer literal too large";
    FLOAT_OUT_OF_RANGE = "E0007", "float literal out of range";
    UNBALANCED_DELIMITER = "E0008", "unclosed or unmatched delimiter";
    BAD_ESCAPE = "E0009", "unknown escape sequence in a string literal";
    UNREADABLE_FILE = "E0010", "a source file cannot be read";

    MODULE_NOT_FOUND = "E0100", "the module named by `use` does not exist";
    IMPORT_NOT_FOUND = "E0101", "the module does not define the imported name";
    CYCLIC_USE = "E0102", "modules import each other in a cycle";
    UNKNOWN_NAME = "E0103", "cannot find a name in scope";
    DUPLICATE_DEFINITION = "E0104", "a name is defined twice";
    UNKNOWN_TYPE = "E0105", "unknown type or element type";
    RECURSIVE_LAYER = "E0106", "a layer contains itself";
    RECURSIVE_FN = "E0107", "a function calls itself";
    NESTING_TOO_DEEP_ITEMS = "E0108", "layers and functions are nested too deeply";

    ARG_COUNT = "E0200", "wrong number of arguments";
    UNKNOWN_NAMED_ARG = "E0201", "unknown named argument";
    DUPLICATE_ARG = "E0202", "an argument is given twice or out of order";
    MISSING_ARG = "E0203", "a required argument is missing";
    TYPE_MISMATCH = "E0204", "mismatched types";
    NOT_CALLABLE = "E0205", "the value cannot be called";
    NO_SUCH_MEMBER = "E0206", "no such member";
    DTYPE_MISMATCH = "E0207", "mismatched element types";
    NOT_STATIC = "E0208", "a value must be known at compile time";
    BAD_OPERAND = "E0209", "an operator cannot be applied to these operands";
    BAD_CONDITION = "E0210", "the condition of `if` is not a compile-time `Bool`";
    NOT_A_BUFFER = "E0211", "`assign` must name a buffer of the layer";
    ZERO_GRADIENT = "E0212", "a gradient is zero: the expression does not depend on the value";

    MATMUL_MISMATCH = "E0300", "matrix multiplication with mismatched inner dimensions";
    NOT_BROADCASTABLE = "E0301", "shapes cannot be broadcast together";
    RANK_MISMATCH = "E0302", "mismatched ranks";
    DIM_MISMATCH = "E0303", "mismatched dimensions";
    RETURN_MISMATCH = "E0304", "the body's type differs from the declared return type";
    BAD_AXIS = "E0305", "axis out of range";
    BAD_DIM = "E0306", "invalid dimension";
    BAD_INDEX = "E0307", "invalid index or slice";
    RESHAPE_SIZE = "E0308", "reshape changes the number of elements";
    BRANCH_MISMATCH = "E0309", "the branches of `if` have different types";
    TENSOR_TOO_LARGE = "E0310", "a tensor is larger than memory can address";
    SCAN_STATE = "E0311", "the state carried by `scan` changes its type";

    DATA_FILE = "E0400", "a data file cannot be read";
    UNKNOWN_LOADER = "E0401", "unknown data loader";
    SPLIT_MISMATCH = "E0402", "the splits of a dataset disagree";
    TRAIN_FIELD = "E0403", "unknown, missing or repeated field in a `train` block";
    BAD_TRAIN_VALUE = "E0404", "invalid value for a `train` field";
    UNKNOWN_CONFIG = "E0405", "unknown optimizer, schedule, metric or initialiser";
    LOSS_NOT_SCALAR = "E0406", "the loss is not a scalar";
    NOT_A_DATASET = "E0407", "`on` does not name a dataset";
    NOT_A_MODEL = "E0408", "a model is expected";
    BAD_MONITOR = "E0409", "early stopping monitors an unknown metric";
    BAD_AUGMENTATION = "E0410", "invalid augmentation";
    NOT_AUGMENTABLE = "E0411", "a field cannot be augmented";
    PRETRAINED_MISFIT = "E0412", "pretrained weights do not fit the layer";

    NOT_SUPPORTED = "E0900", "this construct is not supported yet";
    DTYPE_NOT_SUPPORTED = "E0901", "an element type is not supported here yet";

    RUN_NOT_POSSIBLE = "E1000", "the run cannot start";
    DATA_FILE_CONTENTS = "E1100", "a data file cannot be read or is malformed";
    DATA_MISFIT = "E1101", "the data do not fit the model";
    INDEX_OUT_OF_RANGE = "E1102", "a label or index is out of range";
    WEIGHTS_FILE = "E1200", "a weights file cannot be read or does not fit the model";
    NOT_FINITE = "E1300", "the loss is no longer finite";
    OP_FAILED = "E1301", "an operation failed while running";
    OUT_OF_MEMORY = "E1400", "the run needs more memory than the machine has";
    CANNOT_WRITE = "E1500", "an output cannot be written";
    PROCESSES_DISAGREE = "E1600", "the processes of a data-parallel run cannot work together";
    INTERNAL = "E1900", "a compiler stage failed on a program that checked";
}

/// Looks up the long explanation of `code` (`"E0300"` or `"e0300"`).
pub fn explanation(code: &str) -> Option<(Code, &'static str, &'static str)> {
    CODES
        .iter()
        .find(|(c, _, _)| c.0.eq_ignore_ascii_case(code))
        .copied()
}
