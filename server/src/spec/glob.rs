//! Glob patterns over parameter and group names: `*` (any run of characters), `?` (one
//! character) and `[...]` classes (`[012]`, `[0-2]`, `[!0]`).

/// The most tokens a pattern may have (after runs of `*` are merged): one bit of a `u128` per
/// position, plus the final one. Parameter names are far shorter.
pub const MAX_GLOB_TOKENS: usize = 127;

/// A parsed glob; matching never fails and takes time linear in the name's length.
#[derive(Clone, Debug, PartialEq)]
pub struct Glob {
    source: String,
    tokens: Vec<Token>,
    /// Bit `i` set where token `i` is `*`.
    stars: u128,
    /// For each ASCII character, bit `i` set where token `i` (not a `*`) accepts it.
    ascii: Vec<u128>,
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

impl Token {
    fn accepts(&self, c: char) -> bool {
        match self {
            Token::Literal(l) => *l == c,
            Token::AnyOne => true,
            Token::AnyRun => false,
            Token::Class { negated, ranges } => {
                ranges.iter().any(|&(lo, hi)| lo <= c && c <= hi) != *negated
            }
        }
    }
}

impl Glob {
    /// Parses a glob. The error says what is wrong, for the caller to prefix with the field; it
    /// quotes the pattern only when it is short.
    pub fn parse(source: &str) -> Result<Self, String> {
        if source.is_empty() {
            return Err("the pattern is empty".into());
        }
        let shown = super::shown(source);
        let mut tokens = Vec::new();
        let mut chars = source.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                // `**` means what `*` means: keep one, so no two stars are adjacent.
                '*' if tokens.last() == Some(&Token::AnyRun) => {}
                '*' => tokens.push(Token::AnyRun),
                '?' => tokens.push(Token::AnyOne),
                '[' => tokens.push(parse_class(&mut chars, &shown)?),
                ']' => return Err(format!("{shown} has a ']' without its opening '['")),
                c if c.is_whitespace() || c.is_control() || c == '=' || c == '@' => {
                    return Err(format!(
                        "{shown} contains {c:?}, which no parameter name has"
                    ))
                }
                c => tokens.push(Token::Literal(c)),
            }
            if tokens.len() > MAX_GLOB_TOKENS {
                return Err(format!(
                    "the pattern is longer than {MAX_GLOB_TOKENS} characters; no parameter name is that long"
                ));
            }
        }
        let stars = tokens
            .iter()
            .enumerate()
            .filter(|(_, t)| **t == Token::AnyRun)
            .fold(0u128, |bits, (i, _)| bits | 1 << i);
        let ascii = (0u8..128)
            .map(|b| accepting(&tokens, char::from(b)))
            .collect();
        Ok(Glob {
            source: source.to_string(),
            tokens,
            stars,
            ascii,
        })
    }

    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// Simulates the pattern as an automaton whose states are "the first `i` tokens are matched",
    /// all at once in one `u128`: O(name length), whatever the pattern, with no recursion or
    /// backtracking (a pattern of many `*` cannot make it exponential).
    pub fn matches(&self, name: &str) -> bool {
        let mut states = self.closure(1);
        for c in name.chars() {
            let accepting = match self.ascii.get(c as usize) {
                Some(&bits) => bits,
                None => accepting(&self.tokens, c),
            };
            // A `*` consumes the character and stays; any other token that accepts it advances.
            states = self.closure(((states & accepting) << 1) | (states & self.stars));
            if states == 0 {
                return false;
            }
        }
        states & (1 << self.tokens.len()) != 0
    }

    /// Adds the states reached by letting each `*` match nothing (stars are never adjacent, so
    /// one step is enough).
    fn closure(&self, states: u128) -> u128 {
        states | ((states & self.stars) << 1)
    }
}

/// Bit `i` set where token `i` accepts `c`.
fn accepting(tokens: &[Token], c: char) -> u128 {
    tokens
        .iter()
        .enumerate()
        .filter(|(_, t)| t.accepts(c))
        .fold(0u128, |bits, (i, _)| bits | 1 << i)
}

/// Parses the rest of a `[...]` class, after its `[`.
fn parse_class(
    chars: &mut std::iter::Peekable<std::str::Chars<'_>>,
    shown: &str,
) -> Result<Token, String> {
    let negated = chars.next_if(|&c| c == '!' || c == '^').is_some();
    let mut ranges = Vec::new();
    loop {
        let Some(low) = chars.next() else {
            return Err(format!("{shown} has a '[' without its closing ']'"));
        };
        if low == ']' && !ranges.is_empty() {
            return Ok(Token::Class { negated, ranges });
        }
        if ranges.len() >= MAX_GLOB_TOKENS {
            return Err(format!(
                "{shown} has a [...] class of more than {MAX_GLOB_TOKENS} characters"
            ));
        }
        if chars.next_if_eq(&'-').is_some() {
            match chars.next() {
                Some(']') | None => {
                    return Err(format!("{shown} has a range without its end in [...]"))
                }
                Some(high) if high < low => {
                    return Err(format!("{shown} has a backwards range {low}-{high}"))
                }
                Some(high) => ranges.push((low, high)),
            }
        } else {
            ranges.push((low, low));
        }
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
    fn stars_match_any_run_including_none() {
        let g = |s| Glob::parse(s).unwrap();
        assert!(g("*").matches(""));
        assert!(g("*").matches("head.weight"));
        assert!(g("**").matches("x"));
        assert!(g("a*b*c").matches("abc"));
        assert!(g("a*b*c").matches("aXbYbZc"));
        assert!(!g("a*b*c").matches("aXbYbZ"));
        assert!(g("*.*.weight").matches("encoder.0.weight"));
        assert!(!g("*.*.weight").matches("head.weight"));
        assert!(g("?*").matches("x"));
        assert!(!g("?*").matches(""));
        assert!(g("*é").matches("café"));
        assert!(g("[é]*").matches("été"));
    }

    /// Against a plain backtracking matcher, on every name over a small alphabet up to length 6
    /// and a set of patterns with stars, `?` and classes.
    #[test]
    fn agrees_with_backtracking() {
        fn reference(p: &[char], n: &[char]) -> bool {
            match p.split_first() {
                None => n.is_empty(),
                Some(('*', rest)) => (0..=n.len()).any(|k| reference(rest, &n[k..])),
                Some((&c, rest)) => match n.split_first() {
                    Some((&d, n_rest)) => (c == '?' || c == d) && reference(rest, n_rest),
                    None => false,
                },
            }
        }
        let patterns = [
            "a", "*", "a*", "*a", "*a*", "a*b", "*ab*", "a?b", "??", "*?*", "a**b", "b*a*b",
            "*b*b*", "?a*", "ab", "",
        ];
        let mut names = vec![String::new()];
        for _ in 0..6 {
            let longer: Vec<String> = names
                .iter()
                .filter(|n| n.len() == names.last().unwrap().len())
                .flat_map(|n| ["a", "b"].map(|c| format!("{n}{c}")))
                .collect();
            names.extend(longer);
        }
        for pattern in patterns.iter().filter(|p| !p.is_empty()) {
            let glob = Glob::parse(pattern).unwrap();
            let p: Vec<char> = pattern.chars().collect();
            for name in &names {
                let n: Vec<char> = name.chars().collect();
                assert_eq!(glob.matches(name), reference(&p, &n), "{pattern} vs {name}");
            }
        }
    }

    /// A pattern that took a backtracking matcher minutes (stars before a literal that never
    /// comes) is answered at once, and a pattern too long to be a name is refused, not parsed.
    #[test]
    fn hostile_patterns_are_cheap_or_refused() {
        let many_stars = format!("{}x", "*a".repeat(60));
        let glob = Glob::parse(&many_stars).unwrap();
        assert!(!glob.matches(&"a".repeat(10_000)));
        let err = Glob::parse(&format!("{}x", "*".repeat(10_000) + &"a".repeat(200))).unwrap_err();
        assert!(err.contains("longer than 127"), "{err}");
        assert!(
            err.len() < 200,
            "the error does not echo the pattern: {err}"
        );
        let err = Glob::parse(&format!("[{}]", "a".repeat(10_000))).unwrap_err();
        assert!(err.len() < 300, "{err}");
    }

    #[test]
    fn rejects_malformed_patterns() {
        for bad in ["", "layer[0", "layer]", "a b", "layer[2-0]"] {
            assert!(Glob::parse(bad).is_err(), "{bad}");
        }
    }
}
