//! Browser mode: the token in a cookie, the double-submit CSRF check, and the cookies
//! that carry new tokens. Names and layout are Flask-JWT-Extended's, so either service
//! reads the other's cookies.

use actix_web::cookie::{self, Cookie};
use actix_web::http::header::{self, HeaderMap};
use actix_web::http::Method;
use subtle::ConstantTimeEq;

use crate::auth::tokens::{Delivery, Minted};
use crate::config::{BrowserSettings, SameSite, TokenLocation, TokenSettings, REFRESH_COOKIE_PATH};
use crate::error::ApiError;

/// Where the token of a request came from; the middleware leaves it in the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenSource {
    /// The `Authorization: Bearer` header.
    Header,
    /// A browser-mode cookie.
    Cookie,
}

/// What the double-submit check asks of a cookie's token.
#[derive(Debug, Clone, Copy)]
pub enum Csrf<'a> {
    /// A safe method (GET, HEAD, OPTIONS), or a token from the header.
    NotRequired,
    /// The token's `csrf` claim must equal this header value (absent: not sent).
    Required(Option<&'a [u8]>),
}

/// A token found in a request's cookies, and the check it must pass.
#[derive(Debug, Clone, Copy)]
pub struct CookieToken<'a> {
    /// The JWT.
    pub token: &'a str,
    /// The CSRF check for this request.
    pub csrf: Csrf<'a>,
}

/// The browser-mode rules, built once from the settings.
#[derive(Debug, Clone)]
pub struct BrowserMode {
    settings: BrowserSettings,
    access_ttl: i64,
    refresh_ttl: i64,
}

impl BrowserMode {
    /// The rules for `settings`, with cookie lifetimes those of the tokens.
    pub fn new(settings: &BrowserSettings, tokens: &TokenSettings) -> Self {
        let seconds = |d: std::time::Duration| i64::try_from(d.as_secs()).unwrap_or(i64::MAX);
        BrowserMode {
            settings: settings.clone(),
            access_ttl: seconds(tokens.access_ttl),
            refresh_ttl: seconds(tokens.refresh_ttl),
        }
    }

    /// Where tokens are read.
    pub fn location(&self) -> TokenLocation {
        self.settings.location
    }

    /// How the tokens of a login go out: in cookies when cookies are the only location,
    /// or when they are on and the client asked for them; else in the body.
    pub fn login_delivery(&self, asked: Option<Delivery>) -> Delivery {
        match self.settings.location {
            TokenLocation::Cookies => Delivery::Cookies,
            TokenLocation::Both if asked == Some(Delivery::Cookies) => Delivery::Cookies,
            TokenLocation::Both | TokenLocation::Headers => Delivery::Body,
        }
    }

    /// The token in the request's cookies, when cookies are read: the refresh cookie on
    /// the refresh route (the only path the browser sends it to), else the access
    /// cookie. Any method but GET, HEAD and OPTIONS must pass the CSRF check, a stricter
    /// list than "POST, PUT, PATCH, DELETE" for methods nobody expects.
    pub fn cookie_token<'a>(
        &self,
        method: &Method,
        path: &str,
        headers: &'a HeaderMap,
    ) -> Option<CookieToken<'a>> {
        if !self.settings.location.cookies() {
            return None;
        }
        let (name, csrf_header) = if path == REFRESH_COOKIE_PATH {
            (
                &self.settings.refresh_cookie,
                &self.settings.refresh_csrf_header,
            )
        } else {
            (
                &self.settings.access_cookie,
                &self.settings.access_csrf_header,
            )
        };
        let token = cookie_value(headers, name)?;
        let csrf = if matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS) {
            Csrf::NotRequired
        } else {
            Csrf::Required(headers.get(csrf_header.as_str()).map(|v| v.as_bytes()))
        };
        Some(CookieToken { token, csrf })
    }

    /// The cookies that carry `access` and, from a login or a refresh, `refresh`, each
    /// with its CSRF cookie.
    pub fn token_cookies(&self, access: &Minted, refresh: Option<&Minted>) -> Vec<Cookie<'static>> {
        let s = &self.settings;
        let mut cookies = vec![
            self.cookie(
                &s.access_cookie,
                access.token.clone(),
                "/",
                true,
                self.access_ttl,
            ),
            self.cookie(
                &s.access_csrf_cookie,
                access.csrf.clone().unwrap_or_default(),
                "/",
                false,
                self.access_ttl,
            ),
        ];
        if let Some(refresh) = refresh {
            cookies.push(self.cookie(
                &s.refresh_cookie,
                refresh.token.clone(),
                REFRESH_COOKIE_PATH,
                true,
                self.refresh_ttl,
            ));
            cookies.push(self.cookie(
                &s.refresh_csrf_cookie,
                refresh.csrf.clone().unwrap_or_default(),
                "/",
                false,
                self.refresh_ttl,
            ));
        }
        cookies
    }

    /// The four cookies emptied and expired, each at the path it was set at (a browser
    /// keys a cookie by name, domain and path).
    pub fn cleared_cookies(&self) -> Vec<Cookie<'static>> {
        let s = &self.settings;
        [
            (&s.access_cookie, "/", true),
            (&s.access_csrf_cookie, "/", false),
            (&s.refresh_cookie, REFRESH_COOKIE_PATH, true),
            (&s.refresh_csrf_cookie, "/", false),
        ]
        .into_iter()
        .map(|(name, path, http_only)| {
            let mut cookie = self.cookie(name, String::new(), path, http_only, 0);
            cookie.set_expires(cookie::time::OffsetDateTime::UNIX_EPOCH);
            cookie
        })
        .collect()
    }

    fn cookie(
        &self,
        name: &str,
        value: String,
        path: &'static str,
        http_only: bool,
        max_age: i64,
    ) -> Cookie<'static> {
        Cookie::build(name.to_owned(), value)
            .path(path)
            .http_only(http_only)
            .secure(self.settings.secure)
            .same_site(match self.settings.same_site {
                SameSite::Lax => cookie::SameSite::Lax,
                SameSite::Strict => cookie::SameSite::Strict,
                SameSite::None => cookie::SameSite::None,
            })
            .max_age(cookie::time::Duration::seconds(max_age))
            .finish()
    }
}

/// The double-submit check: the header must repeat the token's `csrf` claim, compared
/// in constant time (OWASP CSRF Prevention Cheat Sheet, "Signed double-submit cookie":
/// the value is inside the signed token, so a cookie planted by a sibling domain does
/// not help).
pub fn check_csrf(claim: Option<&str>, sent: Option<&[u8]>) -> Result<(), ApiError> {
    let sent = sent.ok_or(ApiError::CsrfTokenInvalid("Missing CSRF token."))?;
    match claim {
        Some(claim) if bool::from(claim.as_bytes().ct_eq(sent)) => Ok(()),
        _ => Err(ApiError::CsrfTokenInvalid(
            "CSRF double submit tokens do not match.",
        )),
    }
}

/// The value of the cookie `name` (RFC 6265 5.4: `name=value` pairs separated by `; `),
/// without allocating: this runs on every request in browser mode. A quoted value loses
/// its quotes; the first of several cookies of one name wins (the browser sends the one
/// with the longest path first). An empty value is no cookie: it is what clearing
/// leaves in a client that does not drop expired cookies.
fn cookie_value<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .filter_map(|line| line.to_str().ok())
        .flat_map(|line| line.split(';'))
        .find_map(|pair| {
            let (key, value) = pair.split_once('=')?;
            (key.trim() == name).then(|| {
                let value = value.trim();
                value
                    .strip_prefix('"')
                    .and_then(|v| v.strip_suffix('"'))
                    .unwrap_or(value)
            })
        })
        .filter(|value| !value.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::http::header::HeaderValue;

    fn headers(lines: &[&str]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for line in lines {
            map.append(header::COOKIE, HeaderValue::from_str(line).unwrap());
        }
        map
    }

    #[test]
    fn a_cookie_is_found_among_others_and_across_lines() {
        let h = headers(&["a=1; access_token_cookie=x.y.z", "b=\"2\""]);
        assert_eq!(cookie_value(&h, "access_token_cookie"), Some("x.y.z"));
        assert_eq!(cookie_value(&h, "b"), Some("2"));
        assert_eq!(cookie_value(&h, "access"), None);
        assert_eq!(
            cookie_value(&headers(&["access_token_cookie"]), "access_token_cookie"),
            None
        );
    }

    #[test]
    fn the_csrf_value_must_match_the_claim() {
        assert!(check_csrf(Some("abc"), Some(b"abc")).is_ok());
        for (claim, sent) in [
            (Some("abc"), None),
            (Some("abc"), Some(&b"abd"[..])),
            (Some("abc"), Some(&b""[..])),
            (None, Some(&b"abc"[..])),
            (None, None),
        ] {
            let err = check_csrf(claim, sent).unwrap_err();
            assert_eq!(err.code(), "csrf_token_invalid");
        }
    }
}
