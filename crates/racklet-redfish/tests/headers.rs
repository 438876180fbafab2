//! The headers every JSON resource carries: `Link: <schema>; rel=describedby` naming its
//! `@odata.type`'s schema, an ETag, and `304 Not Modified` for a matching If-None-Match.

// reason: tests may expect, helpers included: a panic is their failure report.
#![allow(clippy::expect_used)]

use axum::http::{Method, StatusCode};

mod common;
use common::{admin, call};

#[tokio::test]
async fn json_resources_link_their_schema_and_answer_if_none_match() {
    let f = common::start("headers", |_, _| {});
    for (uri, schema) in [
        ("/redfish/v1/", "ServiceRoot.v1_20_0"),
        ("/redfish/v1/Systems/1", "ComputerSystem.v1_27_0"),
        ("/redfish/v1/Systems", "ComputerSystemCollection"),
    ] {
        let (status, headers, body) = call(&f, Method::GET, uri, admin(&f), "", &[]).await;
        assert_eq!(status, StatusCode::OK, "{uri}: {body}");
        let link = headers["Link"].to_str().expect("ASCII");
        assert_eq!(
            link,
            format!("<http://redfish.dmtf.org/schemas/v1/{schema}.json>; rel=describedby"),
            "{uri}"
        );
        let etag = headers["ETag"].to_str().expect("ASCII").to_string();
        let (status, _, _) = call(
            &f,
            Method::GET,
            uri,
            admin(&f),
            "",
            &[("If-None-Match", &etag)],
        )
        .await;
        assert_eq!(status, StatusCode::NOT_MODIFIED, "{uri}");
    }
}
