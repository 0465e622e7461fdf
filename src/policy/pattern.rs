//! The small pattern languages of the policy rules: `*` globs for names,
//! paths and units, and a regular-expression subset for command lines.
//!
//! The regex subset (no crate: the guard's whole binary is mlocked, and
//! this is all a rule needs):
//! - literal characters; `\` makes the next character literal, and `\d`
//!   `\s` `\w` are digit, white space, word character (ASCII);
//! - `.` any character; `[abc]`, `[a-z0-9_]`, `[^...]` classes (a `]`
//!   first in the class is literal);
//! - `*`, `+`, `?` after one item (no counted repetition `{n,m}`);
//! - `^` at the start and `$` at the end of an alternative anchor it;
//! - `|` between whole alternatives (there are no groups).
//!
//! Matching simulates the pattern as a set of positions (a Thompson NFA
//! without groups), so it takes time proportional to text length times
//! pattern length whatever the pattern: no backtracking blow-up at OOM
//! time. A pattern matches anywhere in the text unless anchored.
#![forbid(unsafe_code)]

/// Patterns longer than this are refused (a rule, not a program).
pub const MAX_PATTERN: usize = 512;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Item {
    Any,
    Char(char),
    /// (negated, ranges)
    Class(bool, Vec<(char, char)>),
}

impl Item {
    fn matches(&self, c: char) -> bool {
        match self {
            Item::Any => true,
            Item::Char(x) => *x == c,
            Item::Class(neg, ranges) => ranges.iter().any(|&(lo, hi)| lo <= c && c <= hi) != *neg,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Rep {
    One,
    Opt,
    Star,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Alt {
    start: bool,
    end: bool,
    items: Vec<(Item, Rep)>,
}

/// A compiled command-line pattern; `Display` gives back its source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Regex {
    src: String,
    alts: Vec<Alt>,
}

impl std::fmt::Display for Regex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.src)
    }
}

fn class_escape(c: char) -> Option<Item> {
    let r: Vec<(char, char)> = match c {
        'd' => vec![('0', '9')],
        's' => vec![(' ', ' '), ('\t', '\r')],
        'w' => vec![('a', 'z'), ('A', 'Z'), ('0', '9'), ('_', '_')],
        _ => return None,
    };
    Some(Item::Class(false, r))
}

fn parse_class(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) -> Result<Item, String> {
    let neg = chars.peek() == Some(&'^');
    if neg {
        chars.next();
    }
    let mut ranges = Vec::new();
    let mut first = true;
    loop {
        let c = chars.next().ok_or("unterminated [")?;
        if c == ']' && !first {
            break;
        }
        first = false;
        let lo = if c == '\\' {
            let e = chars.next().ok_or("trailing \\")?;
            if let Some(Item::Class(_, r)) = class_escape(e) {
                ranges.extend(r);
                continue;
            }
            e
        } else {
            c
        };
        let mut hi = lo;
        if chars.peek() == Some(&'-') {
            let mut ahead = chars.clone();
            ahead.next();
            if let Some(&h) = ahead.peek() {
                if h != ']' {
                    chars.next();
                    hi = chars.next().ok_or("unterminated [")?;
                    if hi == '\\' {
                        hi = chars.next().ok_or("trailing \\")?;
                    }
                    if hi < lo {
                        return Err(format!("range {lo}-{hi} is backwards"));
                    }
                }
            }
        }
        ranges.push((lo, hi));
    }
    Ok(Item::Class(neg, ranges))
}

fn parse_alt(src: &str) -> Result<Alt, String> {
    let mut alt = Alt {
        start: false,
        end: false,
        items: Vec::new(),
    };
    let mut chars = src.chars().peekable();
    if chars.peek() == Some(&'^') {
        chars.next();
        alt.start = true;
    }
    while let Some(c) = chars.next() {
        let item = match c {
            '$' if chars.peek().is_none() => {
                alt.end = true;
                break;
            }
            '.' => Item::Any,
            '[' => parse_class(&mut chars)?,
            '\\' => {
                let e = chars.next().ok_or("trailing \\")?;
                class_escape(e).unwrap_or(Item::Char(e))
            }
            '*' | '+' | '?' => return Err(format!("{c} follows nothing")),
            '(' | ')' | '{' | '}' => {
                return Err(format!(
                    "{c} is not in the supported subset (escape it: \\{c})"
                ))
            }
            '^' | '$' => return Err(format!("{c} only anchors at an end (escape it: \\{c})")),
            _ => Item::Char(c),
        };
        match chars.peek() {
            Some('*') => {
                chars.next();
                alt.items.push((item, Rep::Star));
            }
            Some('+') => {
                chars.next();
                alt.items.push((item.clone(), Rep::One));
                alt.items.push((item, Rep::Star));
            }
            Some('?') => {
                chars.next();
                alt.items.push((item, Rep::Opt));
            }
            _ => alt.items.push((item, Rep::One)),
        }
        if matches!(chars.peek(), Some('*' | '+' | '?')) {
            return Err("two quantifiers in a row".into());
        }
    }
    Ok(alt)
}

impl Regex {
    pub fn new(src: &str) -> Result<Regex, String> {
        if src.is_empty() {
            return Err("empty pattern".into());
        }
        if src.len() > MAX_PATTERN {
            return Err(format!("pattern longer than {MAX_PATTERN} bytes"));
        }
        // A `|` splits alternatives unless escaped or inside a class.
        let mut alts = Vec::new();
        let (mut cur, mut esc, mut class) = (String::new(), false, false);
        for c in src.chars() {
            if !esc && !class && c == '|' {
                alts.push(parse_alt(&cur)?);
                cur.clear();
                continue;
            }
            if !esc && c == '[' {
                class = true;
            } else if !esc && c == ']' && class && !cur.ends_with('[') && !cur.ends_with("[^") {
                class = false;
            }
            esc = !esc && c == '\\';
            cur.push(c);
        }
        alts.push(parse_alt(&cur)?);
        Ok(Regex {
            src: src.to_string(),
            alts,
        })
    }

    pub fn is_match(&self, text: &str) -> bool {
        self.alts.iter().any(|a| a.is_match(text))
    }
}

impl Alt {
    /// Adds state `i` and every state reachable from it without input.
    fn add(&self, set: &mut [bool], mut i: usize) {
        while i < set.len() && !set[i] {
            set[i] = true;
            match self.items.get(i) {
                Some((_, Rep::Opt | Rep::Star)) => i += 1,
                _ => break,
            }
        }
    }

    fn is_match(&self, text: &str) -> bool {
        let n = self.items.len();
        let accept = |set: &[bool]| set[n];
        let mut cur = vec![false; n + 1];
        self.add(&mut cur, 0);
        if accept(&cur) && !self.end {
            return true;
        }
        for c in text.chars() {
            let mut next = vec![false; n + 1];
            for i in (0..n).filter(|&i| cur[i]) {
                let (item, rep) = &self.items[i];
                if item.matches(c) {
                    let to = if *rep == Rep::Star { i } else { i + 1 };
                    self.add(&mut next, to);
                }
            }
            if !self.start {
                self.add(&mut next, 0);
            }
            if accept(&next) && !self.end {
                return true;
            }
            cur = next;
        }
        accept(&cur)
    }
}

/// `*` matches any run of characters (also `/`); everything else is
/// literal. Linear: greedy with one backtrack point (the last `*`).
pub fn glob(pat: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pat.chars().collect(), text.chars().collect());
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ti));
            pi += 1;
        } else if pi < p.len() && p[pi] == t[ti] {
            pi += 1;
            ti += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(p: &str, t: &str) -> bool {
        Regex::new(p).unwrap().is_match(t)
    }

    #[test]
    fn literals_match_anywhere_unless_anchored() {
        assert!(m("leak", "/usr/bin/python3 leak.py"));
        assert!(!m("^leak", "/usr/bin/python3 leak.py"));
        assert!(m("^/usr/bin/python3", "/usr/bin/python3 leak.py"));
        assert!(m("py$", "/usr/bin/python3 leak.py"));
        assert!(!m("leak$", "/usr/bin/python3 leak.py"));
        assert!(m("^abc$", "abc"));
        assert!(!m("^abc$", "abcd"));
    }

    #[test]
    fn quantifiers_classes_and_escapes() {
        assert!(m("^a*b$", "b"));
        assert!(m("^a*b$", "aaab"));
        assert!(!m("^a+b$", "b"));
        assert!(m("^a+b$", "ab"));
        assert!(m("^colou?r$", "color"));
        assert!(m("^colou?r$", "colour"));
        assert!(m("-Xmx\\d+[gG]", "java -Xmx16g -jar x.jar"));
        assert!(!m("-Xmx\\d+[gG]", "java -Xmx512m"));
        assert!(m("^[^ ]*chrome ", "/opt/google/chrome --type=renderer"));
        assert!(m("a\\.b", "a.b"));
        assert!(!m("a\\.b", "axb"));
        assert!(m("^.*$", ""));
        assert!(m("[]x]", "]"));
        assert!(m("[a-]", "-"));
        assert!(m("\\s--leak", "stress --leak"));
        assert!(m("^\\w+$", "under_score9"));
    }

    #[test]
    fn alternatives_are_whole_patterns() {
        assert!(m("^firefox|chrome", "chrome --x"));
        assert!(m("^firefox|chrome", "firefox"));
        assert!(!m("^firefox|^chrome", "my-chrome"));
        assert!(m("a\\|b", "a|b"));
        assert!(m("[|]", "|"));
    }

    #[test]
    fn outside_the_subset_is_an_error_that_says_so() {
        for bad in [
            "", "(a)", "a{2}", "*a", "a**", "[abc", "a\\", "[z-a]", "a^b",
        ] {
            assert!(Regex::new(bad).is_err(), "{bad:?} accepted");
        }
        assert!(Regex::new(&"a".repeat(MAX_PATTERN + 1)).is_err());
        let e = Regex::new("(x)").unwrap_err();
        assert!(e.contains("escape"), "{e}");
    }

    #[test]
    fn no_backtracking_blow_up() {
        // Exponential for a backtracking matcher; here a few million steps.
        let p = "a*".repeat(30) + "b";
        let t = "a".repeat(4000);
        assert!(!m(&p, &t));
    }

    #[test]
    fn display_gives_back_the_source() {
        assert_eq!(Regex::new("^a|b$").unwrap().to_string(), "^a|b$");
    }

    #[test]
    fn globs() {
        assert!(glob("*.service", "nginx.service"));
        assert!(!glob("*.service", "nginx.scope"));
        assert!(glob("firefox", "firefox"));
        assert!(!glob("firefox", "firefox-bin"));
        assert!(glob("/usr/lib/firefox/*", "/usr/lib/firefox/firefox"));
        assert!(glob("a*b*c", "aXbYbZc"));
        assert!(!glob("a*b*c", "aXbYbZ"));
        assert!(glob("*", ""));
        assert!(glob("**", "x"));
    }
}
