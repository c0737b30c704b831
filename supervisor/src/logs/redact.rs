//! Secret values out of text: what every log line, export and diagnostics file goes through.
//!
//! A value is found also base64 or hex encoded, and whatever its case and even when ANSI escape sequences or NUL bytes are
//! interleaved with it (`se\x1b[31mcret`), as a terminal would show it whole. Values shorter
//! than [`MIN_REDACTED`] characters are not redacted.

use std::borrow::Cow;

/// Secret values shorter than this many characters are not redacted: matched without regard to
/// case, a value of one to three characters would be found inside ordinary words and garble
/// every line, and a secret that short can be guessed anyway, so redacting it would only hide
/// that it is too weak.
pub const MIN_REDACTED: usize = 4;

/// What replaces a secret value.
pub const REDACTED: &str = "[redacted]";

/// A set of secret values to take out of text.
#[derive(Default, Clone)]
pub struct Redactor {
    /// Folded (see [`fold`]), longest first, each at least [`MIN_REDACTED`] characters.
    values: Vec<String>,
}

/// Never shows the values.
impl std::fmt::Debug for Redactor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Redactor({} values)", self.values.len())
    }
}

impl Redactor {
    /// A redactor for `values`. Text is handled line by line, so each line of a multi-line
    /// value (a PEM key) is a value of its own too.
    pub fn new<I, S>(values: I) -> Redactor
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut folded: Vec<String> = Vec::new();
        for value in values {
            let value = value.as_ref();
            let lines = value
                .lines()
                .map(|l| l.trim_end_matches('\r'))
                .filter(|l| *l != value);
            for part in std::iter::once(value).chain(lines) {
                if part.chars().count() < MIN_REDACTED {
                    continue;
                }
                // Also as a program might print it encoded: base64 (standard and URL-safe,
                // unpadded, so a padded copy is found too) and hex (any case, as all matching).
                use base64::Engine as _;
                let encoded = [
                    base64::engine::general_purpose::STANDARD_NO_PAD.encode(part),
                    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(part),
                    hex::encode(part),
                ];
                for form in std::iter::once(part.to_owned()).chain(encoded) {
                    let f: String = fold(&form).into_iter().map(|(c, _)| c).collect();
                    if f.chars().count() >= MIN_REDACTED {
                        folded.push(f);
                    }
                }
            }
        }
        folded.sort();
        folded.dedup();
        // Longest first, so a secret containing another is replaced whole.
        folded.sort_by_key(|v| std::cmp::Reverse(v.len()));
        Redactor { values: folded }
    }

    /// Whether there is nothing to redact.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// `line` with every value replaced by [`REDACTED`].
    pub fn line<'a>(&self, line: &'a str) -> Cow<'a, str> {
        if self.values.is_empty() {
            return Cow::Borrowed(line);
        }
        redact_line(line, &self.values)
    }

    /// `text` with every value replaced by [`REDACTED`], line by line (line ends kept).
    pub fn text<'a>(&self, text: &'a str) -> Cow<'a, str> {
        if self.values.is_empty() {
            return Cow::Borrowed(text);
        }
        let mut out = String::new();
        let mut changed = false;
        for line in text.split_inclusive('\n') {
            let redacted = redact_line(line, &self.values);
            changed |= matches!(redacted, Cow::Owned(_));
            out.push_str(&redacted);
        }
        if changed {
            Cow::Owned(out)
        } else {
            Cow::Borrowed(text)
        }
    }
}

/// `text` as a terminal would show it, for matching: ANSI escape sequences and NUL (and other
/// invisible control) characters dropped, every character lowercased; each kept character with
/// the byte range of `text` it came from.
fn fold(text: &str) -> Vec<(char, std::ops::Range<usize>)> {
    let mut out = Vec::with_capacity(text.len());
    let mut chars = text.char_indices().peekable();
    while let Some((at, c)) = chars.next() {
        match c {
            '\u{1b}' => skip_escape(&mut chars),
            // CSI as one C1 character.
            '\u{9b}' => skip_csi(&mut chars),
            '\t' => out.push((c, at..at + 1)),
            c if c.is_control() => {}
            c => {
                let range = at..at + c.len_utf8();
                out.extend(c.to_lowercase().map(|l| (l, range.clone())));
            }
        }
    }
    out
}

type Chars<'a> = std::iter::Peekable<std::str::CharIndices<'a>>;

/// Skips what follows an ESC: a CSI (`ESC [ … final`), an OSC or another string (`ESC ] …`
/// ended by BEL or `ESC \`), or a two-character sequence.
fn skip_escape(chars: &mut Chars<'_>) {
    match chars.next() {
        Some((_, '[')) => skip_csi(chars),
        Some((_, ']' | 'P' | 'X' | '^' | '_')) => {
            while let Some((_, c)) = chars.next() {
                if c == '\u{7}' {
                    break;
                }
                if c == '\u{1b}' {
                    chars.next_if(|(_, c)| *c == '\\');
                    break;
                }
            }
        }
        // Intermediate bytes, then the final one (`ESC ( B`).
        Some((_, ' '..='/')) => {
            while chars.next_if(|(_, c)| (' '..='/').contains(c)).is_some() {}
            chars.next();
        }
        _ => {}
    }
}

/// Skips a CSI's parameter and intermediate bytes and its final byte.
fn skip_csi(chars: &mut Chars<'_>) {
    while chars
        .next_if(|(_, c)| ('\u{20}'..='\u{3f}').contains(c))
        .is_some()
    {}
    chars.next_if(|(_, c)| ('\u{40}'..='\u{7e}').contains(c));
}

/// `line` with every occurrence of a value of `folded` (values already [`fold`]ed, longest
/// first) replaced by [`REDACTED`], matched on the line as [`fold`] shows it: any case, across
/// escapes and NULs. A run of escapes inside a match goes with it.
fn redact_line<'a>(line: &'a str, folded: &[String]) -> Cow<'a, str> {
    let shown = fold(line);
    let text: Vec<char> = shown.iter().map(|(c, _)| *c).collect();
    let mut hidden = vec![false; line.len()];
    let mut any = false;
    for value in folded {
        let value: Vec<char> = value.chars().collect();
        if value.is_empty() || value.len() > text.len() {
            continue;
        }
        let mut i = 0;
        while i + value.len() <= text.len() {
            if text[i..i + value.len()] == value[..] {
                let (start, end) = (shown[i].1.start, shown[i + value.len() - 1].1.end);
                hidden[start..end].iter_mut().for_each(|h| *h = true);
                any = true;
                i += value.len();
            } else {
                i += 1;
            }
        }
    }
    if !any {
        return Cow::Borrowed(line);
    }
    let mut out = String::with_capacity(line.len());
    let mut in_secret = false;
    for (at, c) in line.char_indices() {
        if hidden[at] {
            if !in_secret {
                out.push_str(REDACTED);
                in_secret = true;
            }
        } else {
            out.push(c);
            in_secret = false;
        }
    }
    Cow::Owned(out)
}
