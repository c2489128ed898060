"""API tokens get a scope. Tokens that exist keep today's powers (admin); new ones default to read."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("workspaces", "0004_member_limits")]

    operations = [
        migrations.AddField(
            model_name="apitoken",
            name="scope",
            field=models.CharField(
                choices=[("read", "Read"), ("write", "Write"), ("admin", "Admin")],
                default="admin",
                max_length=8,
            ),
        ),
        migrations.AlterField(
            model_name="apitoken",
            name="scope",
            field=models.CharField(
                choices=[("read", "Read"), ("write", "Write"), ("admin", "Admin")],
                default="read",
                max_length=8,
            ),
        ),
    ]
