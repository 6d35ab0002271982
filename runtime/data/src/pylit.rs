//! A tiny parser for the Python literals found in `.npy` headers: dicts, tuples, lists,
//! strings, integers, `True`, `False` and `None`.

/// A parsed Python literal.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Value {
    /// A quoted string.
    Str(String),
    /// An integer (a trailing Python 2 `L` is accepted).
    Int(i64),
    /// `True` or `False`.
    Bool(bool),
    /// `None`.
    None,
    /// A parenthesised sequence.
    Tuple(Vec<Value>),
    /// A bracketed sequence.
    List(Vec<Value>),
    /// A braced mapping, in source order.
    Dict(Vec<(Value, Value)>),
}

impl Value {
    /// Looks up a string key in a dict.
    pub(crate) fn get(&self, key: &str) -> Option<&Value> {
        match self {
            Value::Dict(entries) => entries
                .iter()
                .find(|(k, _)| matches!(k, Value::Str(s) if s == key))
                .map(|(_, v)| v),
            _ => None,
        }
    }

    /// Writes the value back in Python syntax, for messages.
    pub(crate) fn to_python(&self) -> String {
        fn seq(items: &[Value]) -> String {
            items
                .iter()
                .map(Value::to_python)
                .collect::<Vec<_>>()
                .join(", ")
        }
        match self {
            Value::Str(s) => format!("'{s}'"),
            Value::Int(i) => i.to_string(),
            Value::Bool(true) => "True".to_string(),
            Value::Bool(false) => "False".to_string(),
            Value::None => "None".to_string(),
            Value::Tuple(items) if items.len() == 1 => format!("({},)", seq(items)),
            Value::Tuple(items) => format!("({})", seq(items)),
            Value::List(items) => format!("[{}]", seq(items)),
            Value::Dict(entries) => {
                let parts: Vec<String> = entries
                    .iter()
                    .map(|(k, v)| format!("{}: {}", k.to_python(), v.to_python()))
                    .collect();
                format!("{{{}}}", parts.join(", "))
            }
        }
    }
}

/// How deeply literals may nest before the input is rejected (guards the stack).
const MAX_DEPTH: usize = 32;

/// Parses `text` as a single Python literal surrounded by optional whitespace.
///
/// Errors say what was expected and at which character offset.
pub(crate) fn parse(text: &str) -> Result<Value, String> {
    let mut p = Parser {
        chars: text.chars().collect(),
        pos: 0,
    };
    let v = p.value(0)?;
    p.skip_ws();
    if p.pos < p.chars.len() {
        return Err(p.error("end of header"));
    }
    Ok(v)
}

struct Parser {
    chars: Vec<char>,
    pos: usize,
}

impl Parser {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn skip_ws(&mut self) {
        while self.peek().is_some_and(char::is_whitespace) {
            self.pos += 1;
        }
    }

    fn error(&self, expected: &str) -> String {
        match self.peek() {
            Some(c) => format!("expected {expected} at character {}, found {c:?}", self.pos),
            None => format!(
                "expected {expected} at character {}, found the end",
                self.pos
            ),
        }
    }

    fn value(&mut self, depth: usize) -> Result<Value, String> {
        if depth > MAX_DEPTH {
            return Err(format!(
                "literal nested more than {MAX_DEPTH} levels deep at character {}",
                self.pos
            ));
        }
        self.skip_ws();
        match self.peek() {
            Some('{') => self.dict(depth),
            Some('(') => self.seq(depth, ')').map(Value::Tuple),
            Some('[') => self.seq(depth, ']').map(Value::List),
            Some(q @ ('\'' | '"')) => self.string(q).map(Value::Str),
            Some(c) if c.is_ascii_digit() || c == '-' || c == '+' => self.int(),
            Some(c) if c.is_ascii_alphabetic() => self.word(),
            _ => Err(self.error("a value")),
        }
    }

    fn dict(&mut self, depth: usize) -> Result<Value, String> {
        self.pos += 1; // '{'
        let mut entries = Vec::new();
        loop {
            self.skip_ws();
            if self.peek() == Some('}') {
                self.pos += 1;
                return Ok(Value::Dict(entries));
            }
            let key = self.value(depth + 1)?;
            self.skip_ws();
            if self.peek() != Some(':') {
                return Err(self.error("':'"));
            }
            self.pos += 1;
            let value = self.value(depth + 1)?;
            entries.push((key, value));
            self.skip_ws();
            match self.peek() {
                Some(',') => self.pos += 1,
                Some('}') => {}
                _ => return Err(self.error("',' or '}'")),
            }
        }
    }

    fn seq(&mut self, depth: usize, close: char) -> Result<Vec<Value>, String> {
        self.pos += 1; // opening bracket
        let mut items = Vec::new();
        loop {
            self.skip_ws();
            if self.peek() == Some(close) {
                self.pos += 1;
                return Ok(items);
            }
            items.push(self.value(depth + 1)?);
            self.skip_ws();
            match self.peek() {
                Some(',') => self.pos += 1,
                Some(c) if c == close => {}
                _ => return Err(self.error(&format!("',' or '{close}'"))),
            }
        }
    }

    fn string(&mut self, quote: char) -> Result<String, String> {
        let start = self.pos;
        self.pos += 1;
        let mut out = String::new();
        loop {
            match self.peek() {
                None => return Err(format!("unterminated string starting at character {start}")),
                Some(c) if c == quote => {
                    self.pos += 1;
                    return Ok(out);
                }
                Some('\\') => {
                    self.pos += 1;
                    let escaped = match self.peek() {
                        None => {
                            return Err(format!(
                                "unterminated string starting at character {start}"
                            ))
                        }
                        Some('n') => '\n',
                        Some('t') => '\t',
                        Some(c) => c,
                    };
                    out.push(escaped);
                    self.pos += 1;
                }
                Some(c) => {
                    out.push(c);
                    self.pos += 1;
                }
            }
        }
    }

    fn int(&mut self) -> Result<Value, String> {
        let start = self.pos;
        let negative = match self.peek() {
            Some('-') => {
                self.pos += 1;
                true
            }
            Some('+') => {
                self.pos += 1;
                false
            }
            _ => false,
        };
        let digits_start = self.pos;
        let mut value: i64 = 0;
        while let Some(d) = self.peek().and_then(|c| c.to_digit(10)) {
            value = value
                .checked_mul(10)
                .and_then(|v| v.checked_add(i64::from(d)))
                .ok_or_else(|| format!("integer too large at character {start}"))?;
            self.pos += 1;
        }
        if self.pos == digits_start {
            return Err(self.error("a digit"));
        }
        if matches!(self.peek(), Some('L' | 'l')) {
            self.pos += 1;
        }
        if self.peek().is_some_and(|c| c.is_alphanumeric() || c == '.') {
            return Err(self.error("an integer"));
        }
        Ok(Value::Int(if negative { -value } else { value }))
    }

    fn word(&mut self) -> Result<Value, String> {
        let start = self.pos;
        while self.peek().is_some_and(|c| c.is_alphanumeric() || c == '_') {
            self.pos += 1;
        }
        let word: String = self.chars[start..self.pos].iter().collect();
        match word.as_str() {
            "True" => Ok(Value::Bool(true)),
            "False" => Ok(Value::Bool(false)),
            "None" => Ok(Value::None),
            _ => Err(format!(
                "unexpected name '{word}' at character {start}, expected a literal"
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numpy_style_header() {
        let v = parse("{'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }   \n").unwrap();
        assert_eq!(v.get("descr"), Some(&Value::Str("<f4".into())));
        assert_eq!(v.get("fortran_order"), Some(&Value::Bool(false)));
        assert_eq!(
            v.get("shape"),
            Some(&Value::Tuple(vec![Value::Int(3), Value::Int(4)]))
        );
        assert_eq!(v.get("missing"), None);
    }

    #[test]
    fn odd_but_valid_forms() {
        let v = parse(r#"{"shape": (5L,), "x": [None, True, -1, "a\"b"], 'y': {}}"#).unwrap();
        assert_eq!(v.get("shape"), Some(&Value::Tuple(vec![Value::Int(5)])));
        assert_eq!(
            v.get("x").map(Value::to_python).as_deref(),
            Some("[None, True, -1, 'a\"b']")
        );
        assert_eq!(parse("()").unwrap(), Value::Tuple(vec![]));
    }

    #[test]
    fn errors_do_not_panic() {
        for bad in [
            "",
            "{",
            "{'a' 1}",
            "{'a': }",
            "(1, 2",
            "'abc",
            "{'a': 1.5}",
            "{'a': foo}",
            "99999999999999999999",
            "{} x",
            "-",
            "'\\",
        ] {
            assert!(parse(bad).is_err(), "{bad:?} should fail");
        }
        let deep = "(".repeat(100_000);
        assert!(parse(&deep).unwrap_err().contains("nested"));
    }
}
