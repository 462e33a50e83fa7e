//! Maps a config path such as `virtual_keys[2].providers[0].provider` to the line and column
//! where that value is written, so compile errors (which see only parsed values) can point
//! at the file like parse errors do. JSON is YAML, so one walker serves both formats.

use saphyr_parser::{Event, Parser};
use std::collections::HashMap;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub col: usize,
}

#[derive(Debug, Default)]
pub struct SourceMap {
    positions: HashMap<String, Position>,
}

enum Frame {
    Map { pending_key: Option<String> },
    Seq { next_index: usize },
}

impl SourceMap {
    /// Builds the map; a text the YAML parser rejects yields an empty map (the deserializer
    /// reports that error with its own position).
    pub fn build(text: &str) -> SourceMap {
        let mut positions = HashMap::new();
        let mut stack: Vec<Frame> = Vec::new();
        let mut path: Vec<String> = Vec::new();
        for item in Parser::new_from_str(text) {
            let Ok((event, span)) = item else { break };
            let pos = Position {
                line: span.start.line(),
                col: span.start.col() + 1,
            };
            match event {
                Event::Scalar(value, ..) => {
                    if let Some(Frame::Map { pending_key }) = stack.last_mut() {
                        if pending_key.is_none() {
                            *pending_key = Some(value.into_owned());
                            continue;
                        }
                    }
                    if let Some(segment) = Self::enter_value(&mut stack) {
                        path.push(segment);
                        positions.insert(join(&path), pos);
                        path.pop();
                    }
                }
                Event::MappingStart(..) | Event::SequenceStart(..) => {
                    if let Some(segment) = Self::enter_value(&mut stack) {
                        path.push(segment);
                        positions.insert(join(&path), pos);
                    }
                    stack.push(if matches!(event, Event::MappingStart(..)) {
                        Frame::Map { pending_key: None }
                    } else {
                        Frame::Seq { next_index: 0 }
                    });
                }
                Event::MappingEnd | Event::SequenceEnd => {
                    stack.pop();
                    if !stack.is_empty() {
                        path.pop();
                    }
                }
                _ => {}
            }
        }
        SourceMap { positions }
    }

    /// The path segment of the value now starting in the innermost container, advancing it.
    /// `None` for the document root.
    fn enter_value(stack: &mut [Frame]) -> Option<String> {
        match stack.last_mut()? {
            Frame::Map { pending_key } => Some(pending_key.take().unwrap_or_default()),
            Frame::Seq { next_index } => {
                *next_index += 1;
                Some(format!("[{}]", *next_index - 1))
            }
        }
    }

    /// The position of `path`, or of its nearest ancestor that is written in the file.
    pub fn locate(&self, path: &str) -> Option<Position> {
        let mut p = path;
        loop {
            if let Some(pos) = self.positions.get(p) {
                return Some(*pos);
            }
            let cut = p.rfind(['.', '['])?;
            p = &p[..cut];
        }
    }
}

fn join(path: &[String]) -> String {
    let mut s = String::new();
    for seg in path {
        if !s.is_empty() && !seg.starts_with('[') {
            s.push('.');
        }
        s.push_str(seg);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locates_nested_yaml_values() {
        let text = "server:\n  listen: 127.0.0.1:1\nvirtual_keys:\n  - id: a\n    providers:\n      - {provider: nope, weight: 1}\n";
        let map = SourceMap::build(text);
        assert_eq!(
            map.locate("server.listen"),
            Some(Position { line: 2, col: 11 })
        );
        assert_eq!(
            map.locate("virtual_keys[0].id"),
            Some(Position { line: 4, col: 9 })
        );
        assert_eq!(
            map.locate("virtual_keys[0].providers[0].provider"),
            Some(Position { line: 6, col: 20 })
        );
    }

    #[test]
    fn falls_back_to_the_nearest_written_ancestor() {
        let map = SourceMap::build("virtual_keys:\n  - id: a\n");
        assert_eq!(
            map.locate("virtual_keys[0].models"),
            Some(Position { line: 2, col: 5 })
        );
    }

    #[test]
    fn works_for_json() {
        let map = SourceMap::build("{\n  \"providers\": [\n    {\"name\": \"x\"}\n  ]\n}");
        assert_eq!(
            map.locate("providers[0].name"),
            Some(Position { line: 3, col: 14 })
        );
    }
}
