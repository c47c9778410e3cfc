//! Glob patterns over parameter and group names: `*` (any run of characters), `?` (one
//! character) and `[...]` classes (`[012]`, `[0-2]`, `[!0]`).

/// A parsed glob; matching never fails.
#[derive(Clone, Debug, PartialEq)]
pub struct Glob {
    source: String,
    tokens: Vec<Token>,
}

#[derive(Clone, Debug, PartialEq)]
enum Token {
    Literal(char),
    AnyOne,
    AnyRun,
    Class {
        negated: bool,
        ranges: Vec<(char, char)>,
    },
}

impl Glob {
    /// Parses a glob. The error says what is wrong, for the caller to prefix with the field.
    pub fn parse(source: &str) -> Result<Self, String> {
        if source.is_empty() {
            return Err("the pattern is empty".into());
        }
        let mut tokens = Vec::new();
        let mut chars = source.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '*' => tokens.push(Token::AnyRun),
                '?' => tokens.push(Token::AnyOne),
                '[' => {
                    let negated = chars.next_if(|&c| c == '!' || c == '^').is_some();
                    let mut ranges = Vec::new();
                    loop {
                        let Some(low) = chars.next() else {
                            return Err(format!("'{source}' has a '[' without its closing ']'"));
                        };
                        if low == ']' && !ranges.is_empty() {
                            break;
                        }
                        if chars.next_if_eq(&'-').is_some() {
                            match chars.next() {
                                Some(']') | None => {
                                    return Err(format!(
                                        "'{source}' has a range without its end in [...]"
                                    ))
                                }
                                Some(high) if high < low => {
                                    return Err(format!(
                                        "'{source}' has a backwards range {low}-{high}"
                                    ))
                                }
                                Some(high) => ranges.push((low, high)),
                            }
                        } else {
                            ranges.push((low, low));
                        }
                    }
                    tokens.push(Token::Class { negated, ranges });
                }
                ']' => return Err(format!("'{source}' has a ']' without its opening '['")),
                c if c.is_whitespace() || c == '=' || c == '@' => {
                    return Err(format!(
                        "'{source}' contains '{c}', which no parameter name has"
                    ))
                }
                c => tokens.push(Token::Literal(c)),
            }
        }
        Ok(Glob {
            source: source.to_string(),
            tokens,
        })
    }

    pub fn as_str(&self) -> &str {
        &self.source
    }

    pub fn matches(&self, name: &str) -> bool {
        let name: Vec<char> = name.chars().collect();
        matches_from(&self.tokens, &name)
    }
}

fn matches_from(tokens: &[Token], name: &[char]) -> bool {
    match tokens.split_first() {
        None => name.is_empty(),
        Some((Token::AnyRun, rest)) => {
            (0..=name.len()).any(|skip| matches_from(rest, &name[skip..]))
        }
        Some((token, rest)) => match name.split_first() {
            None => false,
            Some((&c, name_rest)) => {
                let ok = match token {
                    Token::Literal(l) => *l == c,
                    Token::AnyOne => true,
                    Token::Class { negated, ranges } => {
                        ranges.iter().any(|&(lo, hi)| lo <= c && c <= hi) != *negated
                    }
                    Token::AnyRun => unreachable!("handled above"),
                };
                ok && matches_from(rest, name_rest)
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::Glob;

    #[test]
    fn matches_like_a_shell() {
        let g = |s| Glob::parse(s).unwrap();
        assert!(g("layer0").matches("layer0"));
        assert!(!g("layer0").matches("layer0.weight"));
        assert!(g("layer*").matches("layer12"));
        assert!(g("*.bias").matches("head.bias"));
        assert!(g("layer[0-1]").matches("layer1"));
        assert!(!g("layer[!0-1]").matches("layer1"));
        assert!(g("layer?.weight").matches("layer3.weight"));
    }

    #[test]
    fn rejects_malformed_patterns() {
        for bad in ["", "layer[0", "layer]", "a b", "layer[2-0]"] {
            assert!(Glob::parse(bad).is_err(), "{bad}");
        }
    }
}
