//! A position-keeping YAML tree for recipes and pipeline files.
//!
//! Built from yaml-rust2's event parser so that every node remembers where
//! it was written (1-based line and column) and every scalar stays the exact
//! text the author wrote: `1.10`, `00303`, `true` and `3.10` are strings,
//! never numbers or booleans. Typing happens later, in `model/decode.rs`, where the
//! field being decoded says what it expects. Mappings keep their source
//! order; duplicate keys are an error (as in Go's yaml.v3, which melange
//! uses); anchors, aliases and `<<` merge keys are supported with a budget
//! so that an alias bomb cannot blow up memory.

use std::collections::HashMap;
use std::fmt;

use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::{Marker, TScalarStyle};

/// Where a node starts in the source (1-based line and column).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Pos {
    pub line: usize,
    pub col: usize,
}

impl fmt::Display for Pos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.col)
    }
}

impl Pos {
    fn from_marker(m: &Marker) -> Pos {
        // yaml-rust2 counts lines from 1 and columns from 0.
        Pos {
            line: m.line(),
            col: m.col() + 1,
        }
    }
}

/// How a scalar was written; `Plain` scalars may mean null (`~`, `null`, empty).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Style {
    Plain,
    SingleQuoted,
    DoubleQuoted,
    Literal,
    Folded,
}

/// One node of the tree.
#[derive(Clone, Debug)]
pub struct Node {
    pub pos: Pos,
    pub value: Value,
}

/// The three kinds of YAML node.
#[derive(Clone, Debug)]
pub enum Value {
    /// The scalar's text after YAML quoting/escaping rules, never re-typed.
    Scalar {
        text: String,
        style: Style,
    },
    Seq(Vec<Node>),
    /// Entries in source order (merged `<<` entries appended after explicit ones).
    Map(Vec<Entry>),
}

/// A mapping entry: scalar key with its own position, and the value.
#[derive(Clone, Debug)]
pub struct Entry {
    pub key: String,
    pub key_pos: Pos,
    pub value: Node,
}

impl Node {
    /// True for a plain scalar that YAML reads as null: empty, `~`, `null`.
    pub fn is_null(&self) -> bool {
        matches!(&self.value, Value::Scalar { text, style: Style::Plain }
            if text.is_empty() || text == "~" || text == "null" || text == "Null" || text == "NULL")
    }

    /// The entries if this node is a mapping.
    pub fn as_map(&self) -> Option<&[Entry]> {
        match &self.value {
            Value::Map(e) => Some(e),
            _ => None,
        }
    }

    /// Look up a key in a mapping node.
    pub fn get(&self, key: &str) -> Option<&Node> {
        self.as_map()?
            .iter()
            .find(|e| e.key == key)
            .map(|e| &e.value)
    }

    /// A short word for error messages: "a mapping", "a list", "a scalar".
    pub fn kind(&self) -> &'static str {
        match self.value {
            Value::Scalar { .. } => "a scalar",
            Value::Seq(_) => "a list",
            Value::Map(_) => "a mapping",
        }
    }

    fn size(&self) -> usize {
        match &self.value {
            Value::Scalar { .. } => 1,
            Value::Seq(v) => 1 + v.iter().map(Node::size).sum::<usize>(),
            Value::Map(v) => 1 + v.iter().map(|e| 1 + e.value.size()).sum::<usize>(),
        }
    }
}

/// A syntax error (or a structural one, such as a duplicate key).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct YamlError {
    pub pos: Pos,
    pub message: String,
}

impl fmt::Display for YamlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.pos, self.message)
    }
}

/// Nesting deeper than this is refused: recipes are a few levels deep, and
/// the decoders that walk the tree recurse.
const MAX_DEPTH: usize = 200;
/// Total nodes (including alias expansions) one document may produce.
const MAX_NODES: usize = 2_000_000;

/// Parse the first YAML document of `src`. An empty stream is an empty mapping.
pub fn parse(src: &str) -> Result<Node, YamlError> {
    let mut b = Builder::default();
    let mut parser = Parser::new_from_str(src);
    if let Err(e) = parser.load(&mut b, false) {
        // A structural error found by the builder comes first: it happened earlier.
        if let Some(err) = b.error {
            return Err(err);
        }
        return Err(YamlError {
            pos: Pos::from_marker(e.marker()),
            message: yaml_message(e.info()),
        });
    }
    if let Some(err) = b.error {
        return Err(err);
    }
    Ok(b.root.unwrap_or(Node {
        pos: Pos { line: 1, col: 1 },
        value: Value::Map(Vec::new()),
    }))
}

/// yaml-rust2's wording is terse; add the usual cause for the common ones.
fn yaml_message(info: &str) -> String {
    let hint = match info {
        s if s.contains("mapping values are not allowed") => {
            " (is the indentation wrong, or does a value contain `: ` without quotes?)"
        }
        s if s.contains("did not find expected key") => " (is the indentation wrong?)",
        s if s.contains("did not find expected '-' indicator") => " (is the indentation wrong?)",
        _ => "",
    };
    format!("invalid YAML: {info}{hint}")
}

enum Frame {
    Seq {
        pos: Pos,
        anchor: usize,
        items: Vec<Node>,
    },
    Map {
        pos: Pos,
        anchor: usize,
        entries: Vec<Entry>,
        merged: Vec<Entry>,
        key: Option<(String, Pos, Style)>,
    },
}

#[derive(Default)]
struct Builder {
    stack: Vec<Frame>,
    anchors: HashMap<usize, Node>,
    root: Option<Node>,
    docs: usize,
    nodes: usize,
    error: Option<YamlError>,
}

impl Builder {
    fn fail(&mut self, pos: Pos, message: String) {
        if self.error.is_none() {
            self.error = Some(YamlError { pos, message });
        }
    }

    fn complete(&mut self, node: Node, anchor: usize) {
        if anchor != 0 {
            self.anchors.insert(anchor, node.clone());
        }
        let Some(top) = self.stack.last_mut() else {
            if self.root.is_none() {
                self.root = Some(node);
            }
            return;
        };
        match top {
            Frame::Seq { items, .. } => items.push(node),
            Frame::Map {
                entries,
                merged,
                key,
                ..
            } => match key.take() {
                None => match node.value {
                    Value::Scalar { text, style } => *key = Some((text, node.pos, style)),
                    _ => {
                        let pos = node.pos;
                        self.fail(pos, "mapping keys must be plain text".into());
                    }
                },
                Some((k, key_pos, style)) => {
                    if k == "<<" && style == Style::Plain {
                        let sources = match node.value {
                            Value::Map(m) => vec![m],
                            Value::Seq(items) => {
                                let mut out = Vec::new();
                                for it in items {
                                    match it.value {
                                        Value::Map(m) => out.push(m),
                                        _ => {
                                            let pos = it.pos;
                                            self.fail(pos, "`<<` merges only mappings".into());
                                            return;
                                        }
                                    }
                                }
                                out
                            }
                            _ => {
                                self.fail(node.pos, "`<<` merges only mappings".into());
                                return;
                            }
                        };
                        for m in sources {
                            for e in m {
                                if !merged.iter().any(|x| x.key == e.key) {
                                    merged.push(e);
                                }
                            }
                        }
                        return;
                    }
                    if let Some(prev) = entries.iter().find(|e| e.key == k) {
                        let message = format!(
                            "duplicate key `{k}` (first defined at line {})",
                            prev.key_pos.line
                        );
                        self.fail(key_pos, message);
                        return;
                    }
                    entries.push(Entry {
                        key: k,
                        key_pos,
                        value: node,
                    });
                }
            },
        }
    }

    fn count(&mut self, n: usize, pos: Pos) -> bool {
        self.nodes = self.nodes.saturating_add(n);
        if self.nodes > MAX_NODES {
            self.fail(pos, "document too large (alias expansion?)".into());
            return false;
        }
        true
    }
}

fn style_of(s: TScalarStyle) -> Style {
    match s {
        TScalarStyle::Plain => Style::Plain,
        TScalarStyle::SingleQuoted => Style::SingleQuoted,
        TScalarStyle::DoubleQuoted => Style::DoubleQuoted,
        TScalarStyle::Literal => Style::Literal,
        TScalarStyle::Folded => Style::Folded,
    }
}

impl MarkedEventReceiver for Builder {
    fn on_event(&mut self, ev: Event, mark: Marker) {
        if self.error.is_some() {
            return;
        }
        let pos = Pos::from_marker(&mark);
        match ev {
            Event::DocumentStart => {
                self.docs += 1;
            }
            Event::Scalar(text, style, anchor, _tag) => {
                if self.docs > 1 || !self.count(1, pos) {
                    return;
                }
                let node = Node {
                    pos,
                    value: Value::Scalar {
                        text,
                        style: style_of(style),
                    },
                };
                self.complete(node, anchor);
            }
            Event::SequenceStart(anchor, _) | Event::MappingStart(anchor, _) => {
                if self.docs > 1 {
                    return;
                }
                if self.stack.len() >= MAX_DEPTH {
                    self.fail(pos, format!("nesting deeper than {MAX_DEPTH} levels"));
                    return;
                }
                if !self.count(1, pos) {
                    return;
                }
                let frame = if matches!(ev, Event::SequenceStart(..)) {
                    Frame::Seq {
                        pos,
                        anchor,
                        items: Vec::new(),
                    }
                } else {
                    Frame::Map {
                        pos,
                        anchor,
                        entries: Vec::new(),
                        merged: Vec::new(),
                        key: None,
                    }
                };
                self.stack.push(frame);
            }
            Event::SequenceEnd | Event::MappingEnd => {
                if self.docs > 1 {
                    return;
                }
                let Some(frame) = self.stack.pop() else {
                    return;
                };
                let (node, anchor) = match frame {
                    Frame::Seq { pos, anchor, items } => (
                        Node {
                            pos,
                            value: Value::Seq(items),
                        },
                        anchor,
                    ),
                    Frame::Map {
                        pos,
                        anchor,
                        mut entries,
                        merged,
                        ..
                    } => {
                        // yaml-rust2 marks a block mapping at its first `:`;
                        // the first key is where a reader looks for it.
                        let pos = entries.first().map_or(pos, |e| e.key_pos.min(pos));
                        // Explicit keys win over merged ones, as YAML's merge rule says.
                        for e in merged {
                            if !entries.iter().any(|x| x.key == e.key) {
                                entries.push(e);
                            }
                        }
                        (
                            Node {
                                pos,
                                value: Value::Map(entries),
                            },
                            anchor,
                        )
                    }
                };
                self.complete(node, anchor);
            }
            Event::Alias(id) => {
                if self.docs > 1 {
                    return;
                }
                let Some(target) = self.anchors.get(&id) else {
                    self.fail(pos, "alias to an unknown anchor".into());
                    return;
                };
                let mut node = target.clone();
                let size = node.size();
                if !self.count(size, pos) {
                    return;
                }
                node.pos = pos;
                self.complete(node, 0);
            }
            Event::StreamStart | Event::StreamEnd | Event::DocumentEnd | Event::Nothing => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scalar(n: &Node) -> (&str, Style) {
        match &n.value {
            Value::Scalar { text, style } => (text, *style),
            other => panic!("not a scalar: {other:?}"),
        }
    }

    #[test]
    fn numbers_and_booleans_stay_text() {
        let doc = parse("a: 1.10\nb: 00303\nc: true\nd:\ne: 1e3\nf: 0x1F\n").unwrap();
        assert_eq!(scalar(doc.get("a").unwrap()).0, "1.10");
        assert_eq!(scalar(doc.get("b").unwrap()).0, "00303");
        assert_eq!(scalar(doc.get("c").unwrap()).0, "true");
        assert_eq!(scalar(doc.get("d").unwrap()).0, "");
        assert!(doc.get("d").unwrap().is_null());
        assert_eq!(scalar(doc.get("e").unwrap()).0, "1e3");
        assert_eq!(scalar(doc.get("f").unwrap()).0, "0x1F");
    }

    #[test]
    fn keys_that_look_like_numbers_stay_text_in_order() {
        let doc = parse("items:\n  3.10: '310'\n  3.9: '39'\n  1.0: x\n").unwrap();
        let keys: Vec<_> = doc
            .get("items")
            .unwrap()
            .as_map()
            .unwrap()
            .iter()
            .map(|e| e.key.as_str())
            .collect();
        assert_eq!(keys, ["3.10", "3.9", "1.0"]);
    }

    #[test]
    fn quoted_styles_are_kept() {
        let doc = parse("a: 'x'\nb: \"y\"\nc: |\n  z\n").unwrap();
        assert_eq!(scalar(doc.get("a").unwrap()), ("x", Style::SingleQuoted));
        assert_eq!(scalar(doc.get("b").unwrap()), ("y", Style::DoubleQuoted));
        assert_eq!(scalar(doc.get("c").unwrap()), ("z\n", Style::Literal));
        assert!(!doc.get("a").unwrap().is_null());
    }

    #[test]
    fn positions_are_one_based() {
        let doc = parse("package:\n  name: foo\n").unwrap();
        let pkg = doc.as_map().unwrap();
        assert_eq!(pkg[0].key_pos, Pos { line: 1, col: 1 });
        let inner = pkg[0].value.as_map().unwrap();
        assert_eq!(inner[0].key_pos, Pos { line: 2, col: 3 });
        assert_eq!(inner[0].value.pos, Pos { line: 2, col: 9 });
    }

    #[test]
    fn duplicate_keys_are_rejected_with_both_lines() {
        let err = parse("a: 1\nb: 2\na: 3\n").unwrap_err();
        assert_eq!(err.pos, Pos { line: 3, col: 1 });
        assert_eq!(err.message, "duplicate key `a` (first defined at line 1)");
    }

    #[test]
    fn anchors_aliases_and_merge_keys() {
        let doc =
            parse("base: &b\n  x: 1\n  y: 2\nother:\n  <<: *b\n  y: 3\nlist: [*b]\n").unwrap();
        let other = doc.get("other").unwrap();
        assert_eq!(scalar(other.get("x").unwrap()).0, "1");
        assert_eq!(scalar(other.get("y").unwrap()).0, "3");
        match &doc.get("list").unwrap().value {
            Value::Seq(v) => assert_eq!(scalar(v[0].get("y").unwrap()).0, "2"),
            _ => panic!(),
        }
    }

    #[test]
    fn alias_bomb_is_bounded() {
        let mut src = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..10 {
            let p = i - 1;
            src.push_str(&format!(
                "a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n"
            ));
        }
        let err = parse(&src).unwrap_err();
        assert!(err.message.contains("too large"), "{err}");
    }

    #[test]
    fn syntax_error_has_position() {
        let err = parse("package:\n  name: foo\n version: 1\n").unwrap_err();
        assert_eq!(err.pos.line, 3, "{err}");
        assert!(err.message.starts_with("invalid YAML"), "{err}");
    }

    #[test]
    fn empty_document_is_an_empty_map() {
        assert!(parse("").unwrap().as_map().unwrap().is_empty());
    }
}
