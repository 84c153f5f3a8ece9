from partage.cli.main import app

app()
