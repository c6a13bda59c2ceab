//! The input newtypes, valid by construction: once parsed, a [`Name`], [`Price`],
//! [`Username`] or [`NewPassword`] keeps the contract's rules.

use std::collections::HashSet;
use std::sync::LazyLock;

use serde_json::{json, Value};
use utoipa::openapi::schema::{
    AnyOfBuilder, KnownFormat, ObjectBuilder, Schema, SchemaFormat, Type,
};
use utoipa::openapi::RefOr;
use utoipa::{PartialSchema, ToSchema};

/// bcrypt reads at most 72 bytes; longer passwords are refused, never truncated.
pub const MAX_PASSWORD_BYTES: usize = 72;

/// Parses `value` as a string.
pub fn string(value: &Value) -> Result<String, String> {
    value
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| "Not a valid string.".to_string())
}

/// Parses `value` as a boolean.
pub fn boolean(value: &Value) -> Result<bool, String> {
    value
        .as_bool()
        .ok_or_else(|| "Not a valid boolean.".to_string())
}

/// A store, item or tag name: 1 to 80 characters after trimming, stored trimmed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Name(String);

/// The characters of what `char::is_control` refuses (Unicode Cc), for a regular
/// expression's character class (ECMA-262 and most other dialects).
macro_rules! control_class {
    () => {
        r"\u0000-\u001F\u007F-\u009F"
    };
}

/// The bidirectional control and zero-width characters that usernames refuse, for a
/// regular expression's character class. The other format characters (Cf) are many and
/// grow with Unicode versions: the description names them instead.
macro_rules! invisible_class {
    () => {
        r"\u061C\u200B-\u200F\u202A-\u202E\u2060\u2066-\u2069\uFEFF"
    };
}

/// The characters `str::trim` removes (Unicode White_Space), spelled out because `\s`
/// means slightly different sets in different regular expression dialects.
macro_rules! whitespace_class {
    () => {
        r"\t-\r \u0085\u00A0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000"
    };
}

/// The OpenAPI form of `parse`'s rules. The pattern says "1 to 80 characters from the
/// first to the last one that is not whitespace, and no control character except in
/// the whitespace trimmed around them". No `maxLength`: it would count that whitespace,
/// which the service accepts.
impl PartialSchema for Name {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .min_length(Some(1))
            .pattern(Some(concat!(
                r"^[",
                whitespace_class!(),
                r"]*[^",
                whitespace_class!(),
                control_class!(),
                r"](?:[^",
                control_class!(),
                r"]{0,78}[^",
                whitespace_class!(),
                control_class!(),
                r"])?[",
                whitespace_class!(),
                r"]*$"
            )))
            .description(Some(
                "1 to 80 characters after trimming the whitespace around it (it is stored \
                 trimmed); no control characters.",
            ))
            .examples([json!("Corner Shop")])
            .into()
    }
}

impl ToSchema for Name {}

impl Name {
    /// Parses and trims.
    pub fn parse(value: &Value) -> Result<Self, String> {
        let raw = string(value)?;
        let trimmed = raw.trim();
        if !(1..=80).contains(&trimmed.chars().count()) {
            return Err("Length must be between 1 and 80.".into());
        }
        if trimmed.chars().any(char::is_control) {
            return Err("Must not contain control characters.".into());
        }
        Ok(Name(trimmed.to_owned()))
    }

    /// The trimmed name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A price in integer cents: a JSON number, never negative, at most 2 decimals.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Price(i64);

/// The OpenAPI form of `parse`'s rules (what a request may send).
impl PartialSchema for Price {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::Number)
            .minimum(Some(0))
            .maximum(Some(Price::MAX_CENTS / 100))
            .multiple_of(Some(0.01))
            .description(Some(
                "A price: a JSON number, at least 0, at most 1000000000, with at most 2 \
                 decimals. Stored exactly (integer cents).",
            ))
            .examples([json!(10.99)])
            .into()
    }
}

impl ToSchema for Price {}

impl Price {
    /// The largest price accepted (one billion).
    pub const MAX_CENTS: i64 = 100_000_000_000;

    /// Parses a JSON number. The check on decimals allows for binary floating point
    /// (10.1 * 100 is 1010.0000000000001: a few units in the last place of the
    /// product) but refuses any real third decimal, however large the price.
    pub fn parse(value: &Value) -> Result<Self, String> {
        let number = value
            .as_f64()
            .filter(|_| value.is_number())
            .ok_or_else(|| "Not a valid number.".to_string())?;
        if number < 0.0 {
            return Err("Must be greater than or equal to 0.".into());
        }
        let scaled = number * 100.0;
        let cents = scaled.round();
        if (scaled - cents).abs() > 4.0 * f64::EPSILON * scaled {
            return Err("Must have at most 2 decimal places.".into());
        }
        if cents > Self::MAX_CENTS as f64 {
            return Err("Must be at most 1000000000.".into());
        }
        Ok(Price(cents as i64))
    }

    /// From stored cents.
    pub fn from_cents(cents: i64) -> Self {
        Price(cents)
    }

    /// The stored value.
    pub fn cents(self) -> i64 {
        self.0
    }
}

impl serde::Serialize for Price {
    /// A JSON number: cents / 100 is the double nearest the decimal, which serializes
    /// back as that decimal (1030 cents is 10.3).
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_f64(self.0 as f64 / 100.0)
    }
}

/// An integer id in a body (`store_id`).
pub fn id(value: &Value) -> Result<i64, String> {
    value
        .as_i64()
        .filter(|id| *id > 0)
        .ok_or_else(|| "Not a valid id.".to_string())
}

/// A username: 3 to 80 characters after trimming, none of them control, format,
/// bidirectional control or zero-width characters. It carries its [`key`](Username::key),
/// under which names that look alike are one account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Username {
    name: String,
    key: String,
}

/// The OpenAPI form of `parse`'s rules (see [`Name`]'s). The pattern states the
/// control, bidirectional control and zero-width characters; JSON Schema dialects have
/// no portable class for the other format characters, which the description names.
impl PartialSchema for Username {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .min_length(Some(3))
            .pattern(Some(concat!(
                r"^[",
                whitespace_class!(),
                r"]*[^",
                whitespace_class!(),
                control_class!(),
                invisible_class!(),
                r"][^",
                control_class!(),
                invisible_class!(),
                r"]{1,78}[^",
                whitespace_class!(),
                control_class!(),
                invisible_class!(),
                r"][",
                whitespace_class!(),
                r"]*$"
            )))
            .description(Some(
                "3 to 80 characters after trimming the whitespace around it (it is stored \
                 trimmed); no control, format (Unicode Cf), bidirectional control \
                 (U+061C, U+200E, U+200F, U+202A to U+202E, U+2066 to U+2069) or \
                 zero-width (U+200B to U+200D, U+2060, U+FEFF) characters; the length \
                 is counted as typed, before normalisation. Unique after Unicode NFKC \
                 normalisation and case folding: `Alice`, `alice` and `ａlice` are one \
                 account, shown as first registered.",
            ))
            .examples([json!("alice")])
            .into()
    }
}

impl ToSchema for Username {}

/// Characters that a username must not contain, each kind with what the 422 says. A
/// name made of them can show as another's, or as nothing at all.
fn refused(c: char) -> Option<&'static str> {
    use icu_properties::props::{BidiControl, GeneralCategory};
    use icu_properties::{CodePointMapData, CodePointSetData};

    if c.is_control() {
        return Some("Must not contain control characters.");
    }
    // Bidi_Control: the overrides and isolates (U+202A to U+202E, U+2066 to U+2069)
    // that reorder what is shown, and the marks (U+061C, U+200E, U+200F).
    if CodePointSetData::new::<BidiControl>().contains(c) {
        return Some("Must not contain bidirectional control characters.");
    }
    if matches!(c, '\u{200B}'..='\u{200D}' | '\u{2060}' | '\u{FEFF}') {
        return Some("Must not contain zero-width characters.");
    }
    if CodePointMapData::<GeneralCategory>::new().get(c) == GeneralCategory::Format {
        return Some("Must not contain format characters.");
    }
    None
}

impl Username {
    /// Parses and trims. The length is counted on the trimmed name as typed, before
    /// normalisation: NFKC can make a name longer (U+FDFA is 18 characters).
    pub fn parse(value: &Value) -> Result<Self, String> {
        let raw = string(value)?;
        let trimmed = raw.trim();
        let len = trimmed.chars().count();
        if !(3..=80).contains(&len) {
            return Err("Length must be between 3 and 80.".into());
        }
        if let Some(problem) = trimmed.chars().find_map(refused) {
            return Err(problem.into());
        }
        Ok(Username {
            name: trimmed.to_owned(),
            key: Username::key_of(trimmed),
        })
    }

    /// The trimmed username, as typed.
    pub fn as_str(&self) -> &str {
        &self.name
    }

    /// The unique key: the name trimmed, normalised and case folded.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The key of any string, valid username or not: logins look up what they are
    /// given. Unicode's compatibility caseless match (D146 in chapter 3 of the
    /// standard): NFKD(fold(NFKD(fold(NFD(name))))), then composed (NFKC) so that the
    /// key is short. Folding can undo a normalisation (U+0345 folds to U+03B9, which
    /// composes differently), hence the passes between the folds.
    pub fn key_of(name: &str) -> String {
        use icu_casemap::CaseMapperBorrowed;
        use icu_normalizer::{ComposingNormalizerBorrowed, DecomposingNormalizerBorrowed};

        let fold = CaseMapperBorrowed::new();
        let nfd = DecomposingNormalizerBorrowed::new_nfd();
        let nfkd = DecomposingNormalizerBorrowed::new_nfkd();
        // NFKC is NFKD and then composition: the last two steps in one.
        let nfkc = ComposingNormalizerBorrowed::new_nfkc();
        let decomposed = nfd.normalize(name.trim());
        let folded = fold.fold_string(&decomposed);
        let once = nfkd.normalize(&folded);
        nfkc.normalize(&fold.fold_string(&once)).into_owned()
    }
}

/// Django's list of the 20,000 most common passwords, lowercased (see assets/README.md).
const COMMON_PASSWORDS: &str = include_str!("../../assets/common-passwords.txt");

/// The list as a set, built on first use.
static COMMON: LazyLock<HashSet<&'static str>> =
    LazyLock::new(|| COMMON_PASSWORDS.lines().map(str::trim).collect());

/// Whether `password` is on the common list, ignoring case and surrounding whitespace
/// (so "  Password1 " is as guessable as "password1").
pub fn is_common_password(password: &str) -> bool {
    COMMON.contains(password.trim().to_lowercase().as_str())
}

/// A password being set: at least 8 characters and at most 72 bytes (bcrypt's limit;
/// longer is refused, never truncated), and not one of the most common passwords
/// (NIST SP 800-63B 5.1.1.2: check new passwords against values known to be commonly
/// used; no composition rules).
#[derive(Clone, PartialEq, Eq)]
pub struct NewPassword(String);

/// The OpenAPI form of `parse`'s rules. JSON Schema counts characters, not bytes, so
/// the byte limit is given as the four cases that certainly fit in it (by the widest
/// character used): the service also accepts the mixed strings of up to 72 bytes
/// between them, which the description states.
impl PartialSchema for NewPassword {
    fn schema() -> RefOr<Schema> {
        let bytes = MAX_PASSWORD_BYTES;
        let case = |width: usize, pattern: Option<&str>, description: String| {
            ObjectBuilder::new()
                .schema_type(Type::String)
                .format(Some(SchemaFormat::KnownFormat(KnownFormat::Password)))
                .min_length(Some(8))
                .max_length(Some(bytes / width))
                .pattern(pattern)
                .description(Some(description))
        };
        AnyOfBuilder::new()
            .item(case(
                1,
                Some(r"^[\u0000-\u007F]*$"),
                format!("ASCII: 8 to {bytes} characters."),
            ))
            .item(case(
                2,
                Some(r"^[\u0000-\u07FF]*$"),
                format!(
                    "Characters below U+0800 (2 bytes or fewer): 8 to {} characters.",
                    bytes / 2
                ),
            ))
            .item(case(
                3,
                Some(r"^[\u0000-\uFFFF]*$"),
                format!(
                    "Characters of the BMP (3 bytes or fewer): 8 to {} characters.",
                    bytes / 3
                ),
            ))
            .item(case(
                4,
                None,
                format!("Any characters: 8 to {} characters.", bytes / 4),
            ))
            .description(Some(format!(
                "A new password: at least 8 characters and at most {bytes} bytes of UTF-8 \
                 (bcrypt's limit; a longer one is refused, never truncated), and not one of \
                 the 20,000 most common passwords (compared ignoring case and surrounding \
                 whitespace). Not trimmed."
            )))
            .examples([json!("correct-horse-battery")])
            .into()
    }
}

impl ToSchema for NewPassword {}

impl NewPassword {
    /// Parses without trimming: spaces are part of a password.
    pub fn parse(value: &Value) -> Result<Self, String> {
        let raw = string(value)?;
        if raw.chars().count() < 8 {
            return Err("Must be at least 8 characters long.".into());
        }
        if raw.len() > MAX_PASSWORD_BYTES {
            return Err(format!("Must be at most {MAX_PASSWORD_BYTES} bytes long."));
        }
        if is_common_password(&raw) {
            return Err("This password is too common.".into());
        }
        Ok(NewPassword(raw))
    }

    /// The password.
    pub fn into_inner(self) -> String {
        self.0
    }
}

impl std::fmt::Debug for NewPassword {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("NewPassword([redacted])")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames_are_trimmed_and_bounded() {
        assert_eq!(Username::parse(&json!("  bob ")).unwrap().as_str(), "bob");
        assert!(Username::parse(&json!("ab")).is_err());
        assert!(Username::parse(&json!("x".repeat(81))).is_err());
        assert!(Username::parse(&json!(12)).is_err());
        assert!(Username::parse(&json!("bo\u{0}b")).is_err());
    }

    fn key(name: &str) -> String {
        Username::parse(&json!(name)).unwrap().key().to_owned()
    }

    #[test]
    fn usernames_that_look_alike_have_one_key() {
        for same in [
            "Alice",
            "ALICE",
            " alice ",
            "\u{FF41}lice",
            "\u{FF21}\u{FF2C}ice",
        ] {
            assert_eq!(key(same), "alice", "{same:?}");
        }
        // NFC and NFD of the same name.
        assert_eq!(key("Jos\u{E9}"), key("Jose\u{301}"));
        assert_eq!(key("JOS\u{C9}"), key("jose\u{301}"));
        // Full case folding, not lowercasing: ß is ss, final sigma is sigma, the
        // ligature is two letters.
        assert_eq!(key("Stra\u{DF}e"), key("STRASSE"));
        assert_eq!(key("\u{3A3}\u{391}\u{3A3}"), key("\u{3C3}\u{3B1}\u{3C2}"));
        assert_eq!(key("\u{FB01}sh"), key("fish"));
        // The iota subscript (U+0345, here inside U+1FB3) folds to a full iota.
        assert_eq!(key("\u{1FB3}\u{301}x"), key("\u{391}\u{301}\u{399}x"));
        assert_ne!(key("alice"), key("alicia"));
        // The display name is what was typed, trimmed.
        assert_eq!(
            Username::parse(&json!(" Jos\u{E9} ")).unwrap().as_str(),
            "Jos\u{E9}"
        );
        // Logins look up any string, valid name or not.
        assert_eq!(Username::key_of("  ALI\u{200B}CE "), "ali\u{200B}ce");
    }

    #[test]
    fn usernames_refuse_invisible_and_reordering_characters_by_kind() {
        for (name, problem) in [
            ("bo\u{7}b", "control"),
            ("bo\u{85}b", "control"),
            ("bob\u{202E}gnp", "bidirectional control"),
            ("bob\u{2066}x\u{2069}", "bidirectional control"),
            ("bob\u{200F}", "bidirectional control"),
            ("bo\u{200B}b", "zero-width"),
            ("bo\u{200D}b", "zero-width"),
            ("bo\u{2060}b", "zero-width"),
            ("\u{FEFF}bob", "zero-width"),
            ("bo\u{AD}b", "format"),
            ("bob\u{E0041}", "format"),
        ] {
            assert_eq!(
                Username::parse(&json!(name)),
                Err(format!("Must not contain {problem} characters.")),
                "{name:?}"
            );
        }
        assert!(Username::parse(&json!("Zo\u{EB} \u{1F600}")).is_ok());
    }

    #[test]
    fn the_characters_the_documented_pattern_refuses_are_refused() {
        // The class is `\uXXXX` escapes, alone or as `\uXXXX-\uXXXX` ranges.
        let escape = |text: &str| u32::from_str_radix(&text[2..6], 16).unwrap();
        let mut rest = invisible_class!();
        let mut listed = Vec::new();
        while !rest.is_empty() {
            let first = escape(rest);
            rest = &rest[6..];
            let last = match rest.strip_prefix('-') {
                Some(range) => {
                    rest = &range[6..];
                    escape(range)
                }
                None => first,
            };
            listed.extend((first..=last).filter_map(char::from_u32));
        }
        for c in &listed {
            assert!(refused(*c).is_some(), "U+{:04X}", u32::from(*c));
        }
        assert_eq!(listed.len(), 17);
    }

    #[test]
    fn username_length_is_counted_as_typed_before_normalisation() {
        // U+FDFA is one character typed and 18 after NFKC.
        let wide = "\u{FDFA}".repeat(80);
        let parsed = Username::parse(&json!(wide)).unwrap();
        assert_eq!(parsed.key().chars().count(), 80 * 18);
        assert!(Username::parse(&json!("\u{FDFA}".repeat(81))).is_err());
        assert!(Username::parse(&json!("\u{FB01}")).is_err());
    }

    #[test]
    fn prices_are_exact_cents() {
        assert_eq!(Price::parse(&json!(10.1)).unwrap().cents(), 1010);
        assert_eq!(Price::parse(&json!(10.3)).unwrap().cents(), 1030);
        assert_eq!(Price::parse(&json!(0)).unwrap().cents(), 0);
        assert_eq!(Price::parse(&json!(19.99)).unwrap().cents(), 1999);
        assert_eq!(Price::parse(&json!(1e9)).unwrap().cents(), 100_000_000_000);
        assert!(Price::parse(&json!(1.005)).is_err());
        assert!(Price::parse(&json!(-0.01)).is_err());
        assert!(Price::parse(&json!("10")).is_err());
        assert!(Price::parse(&json!(1e9 + 0.01)).is_err());
        // A third decimal is refused at any magnitude, down to the smallest number.
        assert!(Price::parse(&json!(456006150.38194317)).is_err());
        assert!(Price::parse(&json!(999999999.999)).is_err());
        assert!(Price::parse(&json!(1e-300)).is_err());
        assert!(Price::parse(&json!(5e-324)).is_err());
        assert_eq!(
            Price::parse(&json!(999999999.99)).unwrap().cents(),
            99_999_999_999
        );
        let sum = Price::from_cents(Price::parse(&json!(10.1)).unwrap().cents() + 20);
        assert_eq!(serde_json::to_string(&sum).unwrap(), "10.3");
    }

    #[test]
    fn every_two_decimal_price_is_read_exactly() {
        let cents = (0..200_000)
            .chain((0..200_000).map(|n| Price::MAX_CENTS - n))
            .chain((1..=11).map(|e| 10_i64.pow(e) - 1));
        for cents in cents {
            let text = format!("{}.{:02}", cents / 100, cents % 100);
            let value: Value = serde_json::from_str(&text).unwrap();
            assert_eq!(Price::parse(&value).map(Price::cents), Ok(cents), "{text}");
        }
    }

    #[test]
    fn names_are_trimmed_and_bounded() {
        assert_eq!(Name::parse(&json!("  Shop ")).unwrap().as_str(), "Shop");
        assert!(Name::parse(&json!("   ")).is_err());
        assert!(Name::parse(&json!("x".repeat(80))).is_ok());
        assert!(Name::parse(&json!("x".repeat(81))).is_err());
    }

    #[test]
    fn passwords_are_counted_in_bytes_at_the_top() {
        assert!(NewPassword::parse(&json!("x".repeat(72))).is_ok());
        assert!(NewPassword::parse(&json!("x".repeat(73))).is_err());
        // 24 three-byte characters are 72 bytes; one more is too long.
        assert!(NewPassword::parse(&json!("€".repeat(24))).is_ok());
        assert!(NewPassword::parse(&json!("€".repeat(25))).is_err());
        assert!(NewPassword::parse(&json!("short")).is_err());
    }

    #[test]
    fn common_passwords_are_refused_whatever_their_case_and_padding() {
        for common in [
            "password",
            "PassWord123",
            "  qwertyuiop ",
            "iloveyou",
            "12345678",
        ] {
            assert_eq!(
                NewPassword::parse(&json!(common)),
                Err("This password is too common.".to_string()),
                "{common}"
            );
        }
        assert!(
            is_common_password("123456"),
            "short entries are on the list too"
        );
        assert!(NewPassword::parse(&json!("correct-horse-battery")).is_ok());
        // The whole list was loaded, not a prefix of it.
        assert!(COMMON.len() > 19_000, "{}", COMMON.len());
    }
}
