def test_plain_completion_reaches_the_fake(openai_client, fake_openai):
    completion = openai_client.chat.completions.create(
        model="openai/gpt-4o-mini", messages=[{"role": "user", "content": "hello"}])
    assert completion.choices[0].message.content == "echo: hello"
    sent = fake_openai.last.json()
    assert sent["model"] == "gpt-4o-mini"
    assert fake_openai.last.headers["authorization"] == "Bearer sk-upstream-test"
