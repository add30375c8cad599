//! The photo check on real photographs and on copies ffmpeg spoiled.

mod common;

use genq_vision::qc::{check_photo, decode, PhotoReport, QcThresholds};
use serde_json::json;

fn check(image: &image::DynamicImage) -> PhotoReport {
    check_photo(image, &QcThresholds::default())
}

/// The names of the checks that failed.
fn failed(report: &PhotoReport) -> Vec<&'static str> {
    let c = &report.checks;
    [
        ("resolution", c.resolution.passed),
        ("sharpness", c.sharpness.passed),
        ("brightness", c.brightness.passed),
        ("contrast", c.contrast.passed),
        ("faces", c.faces.passed),
    ]
    .into_iter()
    .filter_map(|(name, passed)| (!passed).then_some(name))
    .collect()
}

#[test]
fn the_portrait_passes_every_check() {
    let report = check(&common::astronaut());
    assert!(report.passed, "{report:#?}");
    assert_eq!((report.width, report.height), (512, 512));
    let faces = &report.checks.faces;
    assert_eq!(faces.count, 1);
    assert!(
        faces.largest_share > 0.02 && faces.largest_share < 0.1,
        "{faces:?}"
    );
    // A passing check says nothing more.
    let json = serde_json::to_value(&report).unwrap();
    assert_eq!(json["passed"], true);
    for check in ["resolution", "sharpness", "brightness", "contrast", "faces"] {
        assert_eq!(json["checks"][check]["passed"], true, "{json:#}");
        assert!(json["checks"][check].get("reason").is_none(), "{json:#}");
    }
    assert_eq!(
        json["checks"]["faces"]["boxes"][0]["width"],
        json!(faces.boxes[0].width)
    );
    assert_eq!(json["checks"]["brightness"]["maximum"], json!(0.85));
    assert_eq!(json["checks"]["resolution"]["minimum_width"], json!(400));
}

#[test]
fn the_cup_fails_only_for_want_of_a_face() {
    let report = check(&common::coffee());
    assert_eq!(failed(&report), ["faces"], "{report:#?}");
    assert!(!report.passed);
    assert_eq!(
        report.checks.faces.reason.as_deref(),
        Some("no face was found")
    );
    assert_eq!(report.checks.faces.largest_share, 0.0);
    // A project that wants no face passes it.
    let no_faces = QcThresholds {
        min_faces: 0,
        ..QcThresholds::default()
    };
    assert!(check_photo(&common::coffee(), &no_faces).passed);
}

#[test]
fn blurred_copies_fail_sharpness_only() {
    let dir = tempfile::tempdir().unwrap();
    for (name, others) in [("astronaut.png", vec![]), ("coffee.png", vec!["faces"])] {
        let report = check(&common::ffmpeg_copy(name, "gblur=sigma=6", dir.path()));
        let mut expected = vec!["sharpness"];
        expected.extend(others);
        assert_eq!(failed(&report), expected, "{name}: {report:#?}");
        let sharpness = &report.checks.sharpness;
        let reason = sharpness.reason.as_deref().unwrap();
        assert!(
            reason.starts_with("the photo is blurry: sharpness "),
            "{reason}"
        );
        assert!(reason.ends_with(" is below 35"), "{reason}");
        // Far below the least, not just under it.
        assert!(sharpness.value < sharpness.minimum / 4.0, "{sharpness:?}");
    }
}

#[test]
fn darkened_copies_fail_brightness() {
    let dir = tempfile::tempdir().unwrap();
    for (name, others) in [("astronaut.png", vec![]), ("coffee.png", vec!["faces"])] {
        let report = check(&common::ffmpeg_copy(
            name,
            "eq=brightness=-0.45",
            dir.path(),
        ));
        let mut expected = vec!["brightness"];
        expected.extend(others);
        assert_eq!(failed(&report), expected, "{name}: {report:#?}");
        let brightness = &report.checks.brightness;
        assert!(brightness.value < 0.12, "{brightness:?}");
        let reason = brightness.reason.as_deref().unwrap();
        assert_eq!(
            reason,
            format!(
                "the photo is too dark: brightness {} is below 0.15",
                brightness.value
            )
        );
    }
}

#[test]
fn small_copies_fail_resolution() {
    let dir = tempfile::tempdir().unwrap();
    let report = check(&common::ffmpeg_copy(
        "astronaut.png",
        "scale=320:240",
        dir.path(),
    ));
    assert_eq!(failed(&report), ["resolution"], "{report:#?}");
    assert_eq!((report.width, report.height), (320, 240));
    assert_eq!(
        report.checks.resolution.reason.as_deref(),
        Some("the photo is 320×240; at least 400×400 is needed")
    );
}

#[test]
fn too_many_faces_and_too_small_a_face_are_explained() {
    let none_allowed = QcThresholds {
        min_faces: 0,
        max_faces: Some(0),
        ..QcThresholds::default()
    };
    let report = check_photo(&common::astronaut(), &none_allowed);
    assert_eq!(
        report.checks.faces.reason.as_deref(),
        Some("1 face was found; the photo must show none")
    );
    let large_face = QcThresholds {
        min_face_share: 0.2,
        ..QcThresholds::default()
    };
    let reason = check_photo(&common::astronaut(), &large_face)
        .checks
        .faces
        .reason
        .unwrap();
    assert!(
        reason.starts_with("the face is too small: it covers "),
        "{reason}"
    );
    assert!(
        reason.ends_with("% of the photo; at least 20% is needed"),
        "{reason}"
    );
    let two = QcThresholds {
        min_faces: 2,
        max_faces: None,
        ..QcThresholds::default()
    };
    let reason = check_photo(&common::astronaut(), &two)
        .checks
        .faces
        .reason
        .unwrap();
    assert_eq!(reason, "1 face was found; at least 2 are needed");
}

#[test]
fn thresholds_parse_with_defaults() {
    let empty: QcThresholds = serde_json::from_value(json!({})).unwrap();
    assert_eq!(empty, QcThresholds::default());
    assert_eq!(empty.check(), Ok(()));
    let some: QcThresholds =
        serde_json::from_value(json!({"minSharpness": 80, "maxFaces": null, "minFaceShare": 0.05}))
            .unwrap();
    assert_eq!(some.min_sharpness, 80.0);
    assert_eq!(some.max_faces, None);
    assert_eq!(some.min_width, 400);
    assert_eq!(some.check(), Ok(()));
    // The schema a project's author is shown names the keys as written.
    let schema = serde_json::to_value(schemars::schema_for!(QcThresholds)).unwrap();
    assert!(schema["properties"]["minSharpness"]["description"]
        .as_str()
        .unwrap()
        .contains("(default 35)"));
    assert_eq!(schema["additionalProperties"], false);
    let unknown = serde_json::from_value::<QcThresholds>(json!({"minSharp": 80})).unwrap_err();
    assert!(
        unknown.to_string().contains("unknown field `minSharp`"),
        "{unknown}"
    );
}

#[test]
fn thresholds_out_of_range_are_refused_by_key() {
    let refused = |value: serde_json::Value| {
        serde_json::from_value::<QcThresholds>(value)
            .unwrap()
            .check()
            .unwrap_err()
    };
    assert_eq!(
        refused(json!({"minBrightness": 1.5})),
        "qc.minBrightness: must be from 0 to 1"
    );
    assert_eq!(
        refused(json!({"maxBrightness": -0.1})),
        "qc.maxBrightness: must be from 0 to 1"
    );
    assert_eq!(
        refused(json!({"minBrightness": 0.6, "maxBrightness": 0.5})),
        "qc.minBrightness: must not be above qc.maxBrightness"
    );
    assert_eq!(
        refused(json!({"minSharpness": -1})),
        "qc.minSharpness: must be a number from 0 up"
    );
    assert_eq!(
        refused(json!({"minContrast": 0.7})),
        "qc.minContrast: must be from 0 to 0.5"
    );
    assert_eq!(
        refused(json!({"minFaces": 2})),
        "qc.maxFaces: must not be below qc.minFaces"
    );
    assert_eq!(
        refused(json!({"minFaceShare": 2})),
        "qc.minFaceShare: must be from 0 to 1"
    );
}

#[test]
fn decode_refuses_what_is_not_a_photo_or_too_large() {
    let photo = decode(&std::fs::read(common::photo_path("coffee.png")).unwrap()).unwrap();
    assert_eq!((photo.width(), photo.height()), (600, 400));
    assert_eq!(
        decode(b"%PDF-1.7 not a photo").unwrap_err(),
        "the photo is not a JPEG, PNG, WebP, GIF or PNM image"
    );
    // A header that claims 10000×6000 is refused before any pixel is read
    // (there are none).
    assert_eq!(
        decode(b"P5\n10000 6000\n255\n").unwrap_err(),
        "the photo is 10000×6000 (60 megapixels); at most 50 megapixels are allowed"
    );
    let truncated = decode(b"P5\n100 100\n255\nabc").unwrap_err();
    assert!(
        truncated.starts_with("the photo could not be decoded: "),
        "{truncated}"
    );
    // A JPEG cut short, which the decoder would fill with grey.
    let mut jpeg = Vec::new();
    photo
        .write_to(
            &mut std::io::Cursor::new(&mut jpeg),
            image::ImageFormat::Jpeg,
        )
        .unwrap();
    assert!(decode(&jpeg).is_ok());
    jpeg.truncate(jpeg.len() / 2);
    assert_eq!(
        decode(&jpeg).unwrap_err(),
        "the photo could not be decoded: the file is truncated"
    );
}
