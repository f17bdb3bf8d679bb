use super::*;

fn head(raw: &str) -> Result<Parsed, FrameError> {
    parse_response_head(raw.as_bytes(), false)
}

fn final_head(raw: &str) -> (ResponseHead, usize) {
    match head(raw) {
        Ok(Parsed::Final(h, n)) => (h, n),
        other => panic!("{raw:?}: {other:?}"),
    }
}

/// Decodes all of `input` fed in pieces of `step` bytes; the data and whether it ended.
fn dechunk(input: &[u8], step: usize) -> Result<(Vec<u8>, bool), FrameError> {
    let pieces: Vec<&[u8]> = input.chunks(step.max(1)).collect();
    crate::fuzzing::dechunk(&pieces)
}

#[test]
fn a_request_head_is_the_parsed_head_written_back() {
    let mut h = HeaderMap::new();
    h.insert("host", HeaderValue::from_static("outlook.contoso.com"));
    h.append("x-two", HeaderValue::from_static("a"));
    h.append("x-two", HeaderValue::from_static("b"));
    let mut dst = BytesMut::new();
    let mut added = AddedHeaders::new();
    let proto = HeaderName::from_static("x-forwarded-proto");
    added.push(&proto, HeaderValue::from_static("https"));
    encode_request_head(&mut dst, &Method::GET, "/ews/exchange.asmx?x=1", &h, &added);
    assert_eq!(
        &dst[..],
        &b"GET /ews/exchange.asmx?x=1 HTTP/1.1\r\nhost: outlook.contoso.com\r\nx-two: a\r\nx-two: b\r\n\
           x-forwarded-proto: https\r\n\r\n"[..]
    );
}

#[test]
fn request_framing_follows_the_prepared_headers() {
    let mut h = HeaderMap::new();
    assert_eq!(RequestFraming::of(&h), Ok(RequestFraming::Empty));
    h.insert(CONTENT_LENGTH, HeaderValue::from_static("1073741824"));
    assert_eq!(RequestFraming::of(&h), Ok(RequestFraming::Length(1 << 30)));
    h.insert(TRANSFER_ENCODING, HeaderValue::from_static("chunked"));
    assert_eq!(RequestFraming::of(&h), Ok(RequestFraming::Chunked));
}

#[test]
fn a_plain_response_is_length_framed_and_reusable() {
    let raw = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nWWW-Authenticate: Negotiate oYG3\r\n\r\nhello";
    let (h, n) = final_head(raw);
    assert_eq!(n, raw.len() - 5);
    assert_eq!(h.status, StatusCode::OK);
    assert_eq!(h.framing, BodyFraming::Length(5));
    assert!(h.reusable);
    assert_eq!(h.headers["www-authenticate"], "Negotiate oYG3");
}

#[test]
fn a_head_in_pieces_is_partial_until_its_blank_line() {
    let raw = "HTTP/1.1 204 No Content\r\nServer: IIS\r\n\r\n";
    for cut in 0..raw.len() {
        assert!(matches!(head(&raw[..cut]), Ok(Parsed::Partial)), "{cut}");
    }
    assert_eq!(final_head(raw).0.framing, BodyFraming::Empty);
}

#[test]
fn interim_responses_are_skipped_and_upgrades_refused() {
    let raw = "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\n";
    assert!(matches!(head(raw), Ok(Parsed::Interim(25))));
    assert_eq!(
        head("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n").unwrap_err(),
        FrameError::Upgrade
    );
}

#[test]
fn bodiless_responses_have_no_body_whatever_they_declare() {
    for raw in [
        "HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n",
        "HTTP/1.1 204 No Content\r\nTransfer-Encoding: chunked\r\n\r\n",
    ] {
        assert_eq!(final_head(raw).0.framing, BodyFraming::Empty, "{raw}");
    }
    let raw = "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n";
    match parse_response_head(raw.as_bytes(), true) {
        Ok(Parsed::Final(h, _)) => {
            assert_eq!(h.framing, BodyFraming::Empty);
            assert_eq!(h.headers[CONTENT_LENGTH], "10", "the length is the GET's, kept");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn transfer_encoding_wins_over_content_length_and_ends_the_connection() {
    let (h, _) = final_head("HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n");
    assert_eq!(h.framing, BodyFraming::Chunked);
    assert!(
        !h.reusable,
        "a message that could be smuggling is the connection's last"
    );
    assert!(!h.headers.contains_key(CONTENT_LENGTH));
    let (h, _) = final_head("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n");
    assert_eq!(h.framing, BodyFraming::Chunked);
    assert!(h.reusable);
    let (h, _) = final_head("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\n");
    assert_eq!(h.framing, BodyFraming::UntilClose);
    assert!(!h.reusable);
}

#[test]
fn framing_is_read_from_every_line_whatever_its_place() {
    // The last Transfer-Encoding line's last coding decides, as if the lines were one list.
    for (codings, framing) in [
        (
            "Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked",
            BodyFraming::Chunked,
        ),
        (
            "Transfer-Encoding: chunked\r\nTransfer-Encoding: gzip",
            BodyFraming::UntilClose,
        ),
        (
            "Transfer-Encoding: chunked\r\nX-A: b\r\nTransfer-Encoding: gzip,\tCHUNKED ",
            BodyFraming::Chunked,
        ),
    ] {
        let raw = format!("HTTP/1.1 200 OK\r\n{codings}\r\n\r\n");
        assert_eq!(final_head(&raw).0.framing, framing, "{codings}");
    }
    // A coding list with bytes outside visible ASCII is not read as chunked.
    let raw = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: \xff, chunked\r\n\r\n";
    match parse_response_head(raw, false) {
        Ok(Parsed::Final(h, _)) => assert_eq!((h.framing, h.reusable), (BodyFraming::UntilClose, false)),
        other => panic!("{other:?}"),
    }
    // With Transfer-Encoding, any Content-Length (even a malformed one, before or after it) is
    // dropped and the connection is not used again: no error, no guess at the length.
    for cl in [
        "Content-Length: 5",
        "Content-Length: x",
        "Content-Length: 1\r\nContent-Length: 2",
    ] {
        for raw in [
            format!("HTTP/1.1 200 OK\r\n{cl}\r\nTransfer-Encoding: chunked\r\n\r\n"),
            format!("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n{cl}\r\n\r\n"),
        ] {
            let (h, _) = final_head(&raw);
            assert_eq!(h.framing, BodyFraming::Chunked, "{raw:?}");
            assert!(!h.reusable && !h.headers.contains_key(CONTENT_LENGTH), "{raw:?}");
        }
    }
    // `close` in any Connection line ends the connection; other options do not.
    for (connection, reusable) in [
        ("Connection: keep-alive\r\nConnection: upgrade, Close", false),
        ("Connection: close\r\nConnection: keep-alive", false),
        ("Connection: keep-alive, closed", true),
    ] {
        let raw = format!("HTTP/1.1 200 OK\r\n{connection}\r\nContent-Length: 0\r\n\r\n");
        assert_eq!(final_head(&raw).0.reusable, reusable, "{connection}");
    }
}

#[test]
fn content_length_must_be_one_number() {
    let (h, _) = final_head("HTTP/1.1 200 OK\r\nContent-Length: 7, 7\r\nContent-Length: 7\r\n\r\n");
    assert_eq!(h.framing, BodyFraming::Length(7));
    for bad in ["7, 8", "-1", "+7", "0x10", "", "7 7", "99999999999999999999"] {
        let raw = format!("HTTP/1.1 200 OK\r\nContent-Length: {bad}\r\n\r\n");
        assert_eq!(head(&raw).unwrap_err(), FrameError::ContentLength, "{bad:?}");
    }
    let raw = "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n";
    assert_eq!(head(raw).unwrap_err(), FrameError::ContentLength);
}

#[test]
fn what_cannot_be_reused_is_not() {
    for raw in [
        "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n",
        "HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n",
        "HTTP/1.1 200 OK\r\n\r\n",
    ] {
        assert!(!final_head(raw).0.reusable, "{raw}");
    }
    assert_eq!(
        final_head("HTTP/1.1 200 OK\r\n\r\n").0.framing,
        BodyFraming::UntilClose
    );
}

#[test]
fn oversized_and_malformed_heads_are_errors() {
    let big = format!("HTTP/1.1 200 OK\r\nX-Big: {}\r\n", "a".repeat(MAX_RESPONSE_HEAD));
    assert_eq!(head(&big).unwrap_err(), FrameError::HeadTooLarge);
    let many: String = (0..=MAX_RESPONSE_HEADERS)
        .map(|i| format!("X-{i}: 1\r\n"))
        .collect();
    assert_eq!(
        head(&format!("HTTP/1.1 200 OK\r\n{many}\r\n")).unwrap_err(),
        FrameError::HeadTooLarge
    );
    for bad in [
        "HTTP/2 200 OK\r\n\r\n",
        "HTTP/1.1 2000 OK\r\n\r\n",
        "HTTP/1.1 200 OK\r\nBad Name: x\r\n\r\n",
        "SSH-2.0-OpenSSH\r\n\r\n",
    ] {
        assert!(head(bad).is_err(), "{bad:?}");
    }
}

#[test]
fn a_chunked_body_decodes_in_any_split() {
    let body = b"5;name=value\r\nhello\r\n1\r\n \r\n6 \r\nworld!\r\n0\r\nX-Trailer: 1\r\n\r\n";
    for step in [1, 2, 3, 7, body.len()] {
        assert_eq!(
            dechunk(body, step),
            Ok((b"hello world!".to_vec(), true)),
            "step {step}"
        );
    }
}

#[test]
fn the_decoder_leaves_what_follows_the_body() {
    let mut buf = BytesMut::from(&b"2\r\nok\r\n0\r\n\r\nHTTP/1.1 200 OK"[..]);
    let mut d = ChunkedDecoder::default();
    assert_eq!(d.decode(&mut buf), Ok(Decoded::Data(Bytes::from_static(b"ok"))));
    assert_eq!(d.decode(&mut buf), Ok(Decoded::Done));
    assert_eq!(&buf[..], b"HTTP/1.1 200 OK");
}

#[test]
fn broken_chunk_framing_is_an_error() {
    for bad in [
        &b"x\r\n"[..],
        b"\r\n",
        b"5\nhello\r\n",
        b"5\r\nhelloX\r\n",
        b"5\r\nhello\n0\r\n\r\n",
        b"11111111111111111\r\n",
        b"0\r\nTrailer\n\r\n",
        b"5;a\nb\r\n",
    ] {
        assert!(dechunk(bad, 1).is_err(), "{:?}", String::from_utf8_lossy(bad));
    }
    let long = format!("1;{}\r\n", "e".repeat(MAX_CHUNK_LINE));
    assert_eq!(
        dechunk(long.as_bytes(), 64).unwrap_err(),
        FrameError::Chunk("chunk-size line too long")
    );
    let trailers = format!("0\r\n{}", "X-T: 1\r\n".repeat(MAX_TRAILERS / 6 + 1));
    assert_eq!(
        dechunk(trailers.as_bytes(), 64).unwrap_err(),
        FrameError::Chunk("trailers too long")
    );
}

#[test]
fn the_largest_chunk_size_does_not_overflow() {
    let mut d = ChunkedDecoder::default();
    let mut buf = BytesMut::from(&b"ffffffffffffffff\r\nabc"[..]);
    assert_eq!(d.decode(&mut buf), Ok(Decoded::Data(Bytes::from_static(b"abc"))));
    assert_eq!(d.decode(&mut buf), Ok(Decoded::NeedMore));
}

#[test]
fn a_chunk_size_line_is_hex() {
    assert_eq!(&chunk_size_line(0x1a2b)[..], b"1a2b\r\n");
}
